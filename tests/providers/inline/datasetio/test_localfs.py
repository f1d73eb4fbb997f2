"""``inline::localfs`` on SQLite and PostgreSQL: JSONL, CSV and Parquet files,
paging, filters, appended rows and every bad input as a 400 naming the field."""

from __future__ import annotations

import base64
import csv
import json
from pathlib import Path

import pytest

from providers.inline.datasetio.localfs import LocalFSDatasetIOConfig, create
from stack.apis.datasets import Dataset
from stack.errors import BadRequestError, NotFoundError
from stack.fetcher import FetchConfig, URLFetcher
from stack.registry import ProviderContext, ProviderSpec

SCHEMA = {"question": {"type": "string"}, "answer": {"type": "string"}, "score": {"type": "number"}}
ROWS = [{"question": f"q{i}", "answer": f"a{i}", "score": i} for i in range(25)]


def dataset(uri: str, dataset_id: str = "qa", schema=SCHEMA, **metadata) -> Dataset:
    return Dataset.model_validate({"identifier": dataset_id, "provider_resource_id": dataset_id,
                                   "provider_id": "localfs", "dataset_schema": schema, "url": {"uri": uri},
                                   "metadata": metadata})


def write_jsonl(path: Path, rows=ROWS) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture
def data_dir(tmp_path) -> Path:
    path = tmp_path / "data"
    path.mkdir()
    return path


@pytest.fixture
async def provider(tmp_path, data_dir, store_config):
    spec = ProviderSpec(api="datasetio", provider_type="inline::localfs", config=LocalFSDatasetIOConfig, factory=create)
    fetcher = URLFetcher(FetchConfig(allow_dirs=[str(data_dir)]))
    config = LocalFSDatasetIOConfig(kvstore=store_config, max_rows_in_page=100)
    context = ProviderContext("localfs", spec, "test", tmp_path / "home", fetcher=fetcher)
    impl = await create(config, context)
    yield impl
    await impl.shutdown()


async def all_rows(provider, dataset_id="qa", size=7, condition=None):
    rows, token = [], None
    while True:
        page = await provider.get_rows_paginated(dataset_id, size, page_token=token, filter_condition=condition)
        rows += page.rows
        token = page.next_page_token
        if token is None:
            return rows, page.total_count


async def test_jsonl_pages_then_appended_rows(provider, data_dir):
    await provider.register_dataset(dataset(str(write_jsonl(data_dir / "qa.jsonl"))))
    first = await provider.get_rows_paginated("qa", 10)
    assert first.rows == ROWS[:10] and first.total_count == 25 and first.next_page_token
    rows, total = await all_rows(provider)
    assert rows == ROWS and total == 25

    extra = [{"question": "q-new", "answer": "a-new", "score": 1.5}]
    await provider.append_rows("qa", extra)
    rows, total = await all_rows(provider)
    assert rows == ROWS + extra and total == 26
    assert (await provider.get_rows_paginated("qa", -1)).rows == ROWS + extra


async def test_bad_row_names_row_and_column_and_writes_nothing(provider, data_dir):
    await provider.register_dataset(dataset(str(write_jsonl(data_dir / "qa.jsonl"))))
    good = {"question": "q", "answer": "a", "score": 1}
    cases = [
        ({"question": "q", "answer": 3, "score": 1}, "rows[3].answer"),
        ({"question": "q", "score": 1}, "rows[3].answer"),
        ({"question": "q", "answer": "a", "score": True}, "rows[3].score"),
        ({**good, "extra": 1}, "rows[3].extra"),
        ("not a row", "rows[3]"),
    ]
    for bad, field in cases:
        with pytest.raises(BadRequestError) as info:
            await provider.append_rows("qa", [good, good, good, bad])
        assert info.value.field == field
    assert (await provider.get_rows_paginated("qa", 100)).total_count == 25


async def test_appended_rows_survive_a_new_provider_on_the_same_store(tmp_path, data_dir, store_config, provider):
    await provider.register_dataset(dataset(str(write_jsonl(data_dir / "qa.jsonl"))))
    await provider.append_rows("qa", [{"question": "x", "answer": "y", "score": 0}])
    spec = ProviderSpec(api="datasetio", provider_type="inline::localfs", config=LocalFSDatasetIOConfig, factory=create)
    context = ProviderContext("localfs", spec, "test", tmp_path / "home2",
                              fetcher=URLFetcher(FetchConfig(allow_dirs=[str(data_dir)])))
    replica = await create(LocalFSDatasetIOConfig(kvstore=store_config), context)
    try:  # a replica that never saw the registration reads the dataset and its appended row
        page = await replica.get_rows_paginated("qa", 100)
        assert page.total_count == 26 and page.rows[-1]["question"] == "x"
        await provider.unregister_dataset(dataset("ignored"))
        with pytest.raises(NotFoundError):
            await replica.get_rows_paginated("qa", 1)
    finally:
        await replica.shutdown()


async def test_filter_condition(provider, data_dir):
    await provider.register_dataset(dataset(str(write_jsonl(data_dir / "qa.jsonl"))))
    rows, total = await all_rows(provider, size=2, condition='score >= 20 or answer == "a3"')
    assert [r["score"] for r in rows] == [3, 20, 21, 22, 23, 24] and total == 6
    rows, _ = await all_rows(provider, condition="not (score < 24) and question != 'q0'")
    assert [r["score"] for r in rows] == [24]
    for bad in ["score >", "score = 3", "nosuch == 1", "score == 3 extra", "__import__('os')", "(score == 1"]:
        with pytest.raises(BadRequestError) as info:
            await provider.get_rows_paginated("qa", 5, filter_condition=bad)
        assert info.value.field == "filter_condition", bad


async def test_paging_arguments(provider, data_dir):
    await provider.register_dataset(dataset(str(write_jsonl(data_dir / "qa.jsonl"))))
    bad_token = base64.urlsafe_b64encode(b"offset:3").decode()
    for kwargs, field in [({"rows_in_page": 101}, "rows_in_page"), ({"rows_in_page": 0}, "rows_in_page"),
                          ({"rows_in_page": 5, "page_token": "12"}, "page_token"),
                          ({"rows_in_page": 5, "page_token": bad_token}, "page_token"),
                          ({"rows_in_page": 5, "page_token": "!!"}, "page_token")]:
        with pytest.raises(BadRequestError) as info:
            await provider.get_rows_paginated("qa", **kwargs)
        assert info.value.field == field, kwargs
    await provider.append_rows("qa", [{"question": "q", "answer": "a", "score": 0}] * 90)
    with pytest.raises(BadRequestError) as info:  # -1 with more rows than a page holds
        await provider.get_rows_paginated("qa", -1)
    assert info.value.field == "rows_in_page"


async def test_bad_urls_are_400s_naming_url(provider, data_dir, tmp_path):
    outside = write_jsonl(tmp_path / "outside.jsonl")
    (data_dir / "notes.txt").write_text("hello")
    (data_dir / "broken.jsonl").write_text("{not json\n")
    (data_dir / "dir.jsonl").mkdir()
    for uri in [str(outside), f"file://{outside}", "relative/path.jsonl", str(data_dir / "missing.jsonl"),
                str(data_dir / "notes.txt"), str(data_dir / "broken.jsonl"), str(data_dir / "dir.jsonl"),
                "ftp://example.com/x.csv", "data:text/plain,hello"]:
        with pytest.raises(BadRequestError) as info:
            await provider.register_dataset(dataset(uri))
        assert info.value.field == "url", uri
    with pytest.raises(BadRequestError) as info:
        await provider.register_dataset(dataset(str(write_jsonl(data_dir / "qa.jsonl")), schema={"missing": {"type": "string"}}))
    assert info.value.field == "dataset_schema.missing"


async def test_csv_with_types_and_quoted_newlines(provider, data_dir):
    path = data_dir / "qa.csv"
    schema = {**SCHEMA, "ok": {"type": "boolean"}, "messages": {"type": "chat_completion_input"}}
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["question", "answer", "score", "ok", "messages"])
        for i in range(2500):
            writer.writerow([f"line one\nline two {i}", f"a{i}", str(i), "true" if i % 2 else "false",
                             json.dumps([{"role": "user", "content": f"q{i}"}])])
    await provider.register_dataset(dataset(str(path), schema=schema))
    page = await provider.get_rows_paginated("qa", 3, page_token=_token(2099))
    assert [r["score"] for r in page.rows] == [2099, 2100, 2101]
    assert page.rows[0] == {"question": "line one\nline two 2099", "answer": "a2099", "score": 2099, "ok": True,
                            "messages": [{"role": "user", "content": "q2099"}]}
    assert page.total_count == 2500


async def test_parquet_by_row_groups(provider, data_dir):
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pylist([{"question": f"q{i}", "answer": f"a{i}", "score": float(i)} for i in range(1000)])
    pq.write_table(table, data_dir / "qa.parquet", row_group_size=128)
    await provider.register_dataset(dataset(f"file://{data_dir / 'qa.parquet'}"))
    page = await provider.get_rows_paginated("qa", 5, page_token=_token(126))
    assert [r["score"] for r in page.rows] == [126, 127, 128, 129, 130] and page.total_count == 1000
    rows, total = await all_rows(provider, size=100, condition="score >= 990")
    assert len(rows) == 10 and total == 10


async def test_data_url_with_format_in_metadata(provider):
    body = base64.b64encode("".join(json.dumps(r) + "\n" for r in ROWS[:3]).encode()).decode()
    await provider.register_dataset(dataset(f"data:application/octet-stream;base64,{body}", format="jsonl"))
    assert (await provider.get_rows_paginated("qa", 10)).rows == ROWS[:3]
    with pytest.raises(BadRequestError) as info:
        await provider.register_dataset(dataset(f"data:;base64,{body}", dataset_id="other"))
    assert info.value.field == "url"
    with pytest.raises(BadRequestError) as info:
        await provider.register_dataset(dataset(f"data:;base64,{body}", dataset_id="other", format="xlsx"))
    assert info.value.field == "metadata.format"


def _token(position: int) -> str:
    from providers.utils.datasetio.paging import encode_token

    return encode_token(position)
