"""A real ``polystack run`` with ``inline::localfs`` datasetio, driven by
llama-stack-client 0.1.0: register a JSONL file, page, append, bad rows and
URLs outside ``server.fetch.allow_dirs``; and the ``polystack datasets`` CLI."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import yaml
from llama_stack_client import APIStatusError, LlamaStackClient

from tests.support import REPO, ServerProcess

SCHEMA = {"question": {"type": "string"}, "answer": {"type": "string"}}
ROWS = [{"question": f"What is {i} + {i}?", "answer": str(2 * i)} for i in range(23)]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    home = tmp_path_factory.mktemp("datasets-home")
    data = home / "data"
    data.mkdir()
    (data / "qa.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    (home / "secret.jsonl").write_text(json.dumps(ROWS[0]) + "\n")
    import datasets

    datasets.Dataset.from_list(ROWS).save_to_disk(str(data / "hf-qa"))
    config = {
        "version": "2", "image_name": "datasets-e2e", "apis": ["datasetio"],
        "providers": {"datasetio": [{"provider_id": "localfs", "provider_type": "inline::localfs",
                                     "config": {"max_rows_in_page": 50}},
                                    {"provider_id": "huggingface", "provider_type": "remote::huggingface",
                                     "config": {}}]},
        "server": {"fetch": {"allow_dirs": [str(data)]}},
    }
    (home / "run.yaml").write_text(yaml.safe_dump(config))
    with ServerProcess(str(home / "run.yaml"), home=home) as proc:
        proc.data, proc.home = data, home
        yield proc


def detail(info) -> str:
    return info.value.response.json()["detail"]


def test_register_page_append(server):
    client = LlamaStackClient(base_url=server.base_url, timeout=60)
    client.datasets.register(dataset_id="qa", dataset_schema=SCHEMA, url={"uri": str(server.data / "qa.jsonl")},
                            provider_id="localfs")
    assert [d.identifier for d in client.datasets.list()] == ["qa"]
    got = client.datasets.retrieve("qa")
    assert (got.provider_id, got.url.uri) == ("localfs", str(server.data / "qa.jsonl"))

    rows, token = [], None
    while True:
        page = client.datasetio.get_rows_paginated(dataset_id="qa", rows_in_page=10, page_token=token)
        assert page.total_count == 23
        rows += page.rows
        token = page.next_page_token
        if not token:
            break
    assert rows == ROWS

    client.datasetio.append_rows(dataset_id="qa", rows=[{"question": "new?", "answer": "yes"}])
    page = client.datasetio.get_rows_paginated(dataset_id="qa", rows_in_page=-1)
    assert page.total_count == 24 and page.rows[-1] == {"question": "new?", "answer": "yes"}
    filtered = client.datasetio.get_rows_paginated(dataset_id="qa", rows_in_page=5, filter_condition='answer == "yes"')
    assert filtered.rows == [{"question": "new?", "answer": "yes"}]

    with pytest.raises(APIStatusError) as info:
        client.datasetio.append_rows(dataset_id="qa", rows=[{"question": "a", "answer": "b"}] * 3 + [{"question": "c", "answer": 4}])
    assert info.value.status_code == 400 and detail(info).startswith("rows[3].answer:")
    assert client.datasetio.get_rows_paginated(dataset_id="qa", rows_in_page=1).total_count == 24

    for kwargs, field in [({"rows_in_page": 51}, "rows_in_page"), ({"rows_in_page": 5, "page_token": "zzz"}, "page_token"),
                          ({"rows_in_page": 5, "filter_condition": "answer = 1"}, "filter_condition")]:
        with pytest.raises(APIStatusError) as info:
            client.datasetio.get_rows_paginated(dataset_id="qa", **kwargs)
        assert info.value.status_code == 400 and detail(info).startswith(f"{field}:"), kwargs

    client.datasets.unregister("qa")
    assert list(client.datasets.list()) == []
    with pytest.raises(APIStatusError) as info:
        client.datasetio.get_rows_paginated(dataset_id="qa", rows_in_page=1)
    assert info.value.status_code == 404


def test_files_outside_allow_dirs_are_refused(server):
    client = LlamaStackClient(base_url=server.base_url, timeout=60)
    for uri in [str(server.home / "secret.jsonl"), f"file://{server.data}/../secret.jsonl", "/etc/passwd",
                str(server.data / "missing.jsonl")]:
        with pytest.raises(APIStatusError) as info:
            client.datasets.register(dataset_id="secret", dataset_schema=SCHEMA, url={"uri": uri}, provider_id="localfs")
        assert info.value.status_code == 400 and detail(info).startswith("url:"), uri
    assert list(client.datasets.list()) == []


def test_huggingface_dataset_saved_to_disk_is_read_only(server):
    client = LlamaStackClient(base_url=server.base_url, timeout=60)
    client.datasets.register(dataset_id="hf-qa", dataset_schema=SCHEMA, provider_id="huggingface",
                             url={"uri": "huggingface://datasets/local/hf-qa"}, metadata={"path": str(server.data / "hf-qa")})
    page = client.datasetio.get_rows_paginated(dataset_id="hf-qa", rows_in_page=20)
    assert page.rows == ROWS[:20] and page.total_count == 23 and page.next_page_token
    with pytest.raises(APIStatusError) as info:
        client.datasetio.append_rows(dataset_id="hf-qa", rows=[{"question": "q", "answer": "a"}])
    assert info.value.status_code == 501
    with pytest.raises(APIStatusError) as info:
        client.datasets.register(dataset_id="hf-bad", dataset_schema=SCHEMA, provider_id="huggingface",
                                 url={"uri": "huggingface://datasets/x"}, metadata={"path": str(server.home)})
    assert info.value.status_code == 400 and detail(info).startswith("metadata.path:")
    client.datasets.unregister("hf-qa")


def test_cli(server):
    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "stack", "datasets", *args, "--stack", server.base_url],
                              capture_output=True, text=True, cwd=REPO, timeout=60)

    done = cli("register", "cli-qa", "--url", str(server.data / "qa.jsonl"), "--schema", json.dumps(SCHEMA),
               "--provider-id", "localfs")
    assert done.returncode == 0, done.stderr
    listed = cli("list")
    assert "cli-qa" in listed.stdout and "localfs" in listed.stdout
    rows = cli("rows", "cli-qa", "--limit", "2")
    assert [json.loads(line) for line in rows.stdout.splitlines()] == ROWS[:2]
    refused = cli("register", "bad", "--url", "/etc/passwd", "--schema", "question:string,answer:string",
                  "--provider-id", "localfs")
    assert refused.returncode != 0 and "url:" in refused.stderr
