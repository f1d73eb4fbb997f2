"""The real ``humanloop==0.8.38`` SDK against ``polystack run`` serving prompt logs
(``base_url=.../v5``, ``X-API-KEY`` auth), and v4 with plain httpx; SQLite and PostgreSQL."""

from __future__ import annotations

import httpx
import pytest
import yaml
from humanloop import Humanloop
from humanloop.core.api_error import ApiError
from humanloop.core.pydantic_utilities import parse_obj_as
from humanloop.error import HumanloopRuntimeError
from humanloop.errors import UnprocessableEntityError
from humanloop.types import PromptLogResponse

from tests.support import ServerProcess

KEY = "hl-test-key"


@pytest.fixture
def server(tmp_path, store_config):
    run = {
        "version": "2", "image_name": "prompt-logs", "apis": ["prompt_logs"],
        "providers": {"prompt_logs": [{"provider_id": "sql", "provider_type": "inline::sql",
                                       "config": {"store": store_config.model_dump(mode="json", exclude_none=True)}}]},
        "server": {"auth": {"api_keys": [KEY]}},
    }
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(run))
    with ServerProcess(str(path), home=tmp_path / "home") as proc:
        yield proc


@pytest.fixture
def sdk(server):
    """Humanloop clients of ``server`` for a given key."""
    yield lambda key=KEY: Humanloop(api_key=key, base_url=f"{server.base_url}/v5")
    # the SDK instruments the openai package process-wide; other tests get it back untouched
    from opentelemetry.instrumentation.openai import OpenAIInstrumentor

    OpenAIInstrumentor().uninstrument()


@pytest.fixture
def humanloop(sdk):
    return sdk()


def _prompt_log(log) -> PromptLogResponse:
    """The SDK hands LogResponse unions back as dicts (their members are forward
    references); they must parse as its own PromptLogResponse."""
    return log if isinstance(log, PromptLogResponse) else parse_obj_as(PromptLogResponse, log)


def test_prompts_log_update_log_and_logs_list(humanloop):
    created = humanloop.prompts.log(
        path="support/answer",
        prompt={"model": "gpt-4o", "temperature": 0.3, "template": [{"role": "system", "content": "Be brief"}]},
        messages=[{"role": "user", "content": "What is 2+2?"}],
        output_message={"role": "assistant", "content": "4"},
        output="4", inputs={"topic": "math"}, prompt_tokens=12, output_tokens=1, provider_latency=0.42,
        log_status="incomplete",
    )
    assert created.id and created.prompt_id.startswith("pr_") and created.version_id.startswith("prv_")

    updated = _prompt_log(humanloop.prompts.update_log(
        id=created.prompt_id, log_id=created.id, output="four", output_cost=0.0004, finish_reason="stop",
        metadata={"user": "u1"}, log_status="complete",
    ))
    assert updated.id == created.id and updated.output == "four" and updated.finish_reason == "stop"
    assert updated.prompt_tokens == 12 and updated.prompt.path == "support/answer"

    second = humanloop.prompts.log(id=created.prompt_id, output="again")  # the latest version
    assert second.version_id == created.version_id

    logs = [_prompt_log(log) for log in humanloop.logs.list(file_id=created.prompt_id, size=1)]  # the pager walks both pages
    assert sorted(log.id for log in logs) == sorted([created.id, second.id])
    fetched = _prompt_log(humanloop.logs.get(id=created.id))
    assert fetched.output == "four" and fetched.metadata == {"user": "u1"} and fetched.log_status == "complete"


def test_sdk_sees_validation_and_lookup_errors(humanloop):
    with pytest.raises(HumanloopRuntimeError) as invalid:  # prompts.log wraps what the API raised
        humanloop.prompts.log(path="p", prompt={"model": "m"}, prompt_tokens=-3)
    assert isinstance(invalid.value.__cause__, UnprocessableEntityError)
    assert invalid.value.__cause__.body.detail[0].loc[-1] == "prompt_tokens"
    with pytest.raises(ApiError) as missing:
        humanloop.prompts.update_log(id="pr_nope", log_id="log_nope", output="x")
    assert missing.value.status_code == 404 and "log_id" in missing.value.body["detail"]


def test_key_is_required(sdk):
    with pytest.raises(ApiError) as refused:
        sdk("wrong").logs.get(id="log_any")
    assert refused.value.status_code == 401


def test_v4_with_httpx(server):
    with httpx.Client(base_url=f"{server.base_url}/v4", headers={"X-API-KEY": KEY}) as v4:
        config = {"model": "gpt-4o", "type": "model"}
        parent = v4.post("/logs", json={"project": "chat", "config": config, "reference_id": "turn-1",
                                        "session_reference_id": "conv-9", "output": "Hi"}).json()
        assert parent["id"].startswith("data_") and parent["session_id"]
        child = v4.post("/logs", json=[{"project_id": parent["project_id"], "config": config,
                                        "parent_reference_id": "turn-1", "session_id": parent["session_id"]}])
        assert child.status_code == 200 and child.json()[0]["session_id"] == parent["session_id"]
        both = v4.post("/logs", json={"project": "chat", "config": config, "parent_id": "a", "parent_reference_id": "b"})
        assert both.status_code == 400 and "parent_id" in both.json()["detail"]
        done = v4.patch("/logs", params={"reference_id": "turn-1"}, json={"output": "Hello", "duration": 0.8})
        assert done.status_code == 200 and done.json()["output"] == "Hello"
        fb = v4.post("/feedback", json=[{"type": "rating", "value": "good", "data_id": parent["id"]}])
        assert fb.status_code == 200 and fb.json()[0]["data_id"] == parent["id"]
        session = v4.post("/sessions", json={"project": "chat", "reference_id": "conv-9"}).json()
        assert session["id"] == parent["session_id"]
        got = v4.get(f"/sessions/{session['id']}").json()
        assert got["logs_count"] == 2 and got["first_inputs"] == {} and got["project"]["name"] == "chat"
        listed = v4.get("/sessions", params={"project_id": parent["project_id"]}).json()
        assert [s["id"] for s in listed["records"]] == [session["id"]]
