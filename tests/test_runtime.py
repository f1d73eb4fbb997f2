"""stack/runtime.py: what providers declare they serve decides the 501s and /v1/inspect/routes."""

from __future__ import annotations

from typing import Protocol

from pydantic import BaseModel

import stack
from stack.apis.batch_inference import BatchInference
from stack.plugins import get_plugin_manager
from stack.registry import ProviderSpec
from tests.support import app_from_yaml, serve_app


async def test_operations_a_provider_does_not_declare_are_not_listed_nor_offered(tmp_path, monkeypatch):
    # the code interpreter serves ToolRuntime (list, invoke), not the rag-tool routes
    monkeypatch.setenv("POLYSTACK_HOME", str(tmp_path / "home"))
    app = app_from_yaml(tmp_path, """\
        version: '2'
        image_name: narrow
        apis: [tool_runtime]
        providers:
          tool_runtime:
          - provider_id: code
            provider_type: inline::code-interpreter
            config: {sandbox: subprocess}
        """)
    async with serve_app(app) as client:
        rag_group = await client.post("/v1/toolgroups", json={"toolgroup_id": "builtin::rag", "provider_id": "code"})
        routes = {(r["route"], r["method"]): r["provider_types"]
                  for r in (await client.get("/v1/inspect/routes")).json()["data"]}
    assert rag_group.status_code == 400 and rag_group.json()["detail"].startswith("provider_id: ")
    assert routes[("/v1/tool-runtime/rag-tool/query", "POST")] == []
    assert routes[("/v1/tool-runtime/invoke", "POST")] == ["inline::code-interpreter"]
    assert routes[("/v1/toolgroups", "GET")] == ["inline::code-interpreter"]


class _CompletionOnly(Protocol):
    batch_completion = BatchInference.batch_completion


class _EmptyConfig(BaseModel):
    pass


class CompletionOnlyBatches:
    """Test double batch-inference provider that serves completions only."""

    async def batch_completion(self, model: str, content_batch: list, **_kwargs):
        return {"batch": [{"content": f"{model}: {len(content_batch)}", "stop_reason": "end_of_turn"}]}


class CompletionOnlyPlugin:
    @stack.hookimpl
    def register_providers(self, register):
        async def create(config, context):
            provider = CompletionOnlyBatches()
            provider.jobs = context.jobs
            return provider

        register(ProviderSpec(api="batch_inference", provider_type="inline::completion-only", config=_EmptyConfig,
                              factory=create, serves=_CompletionOnly))


async def test_an_unrouted_api_answers_501_for_what_its_provider_does_not_declare(tmp_path, monkeypatch):
    monkeypatch.setenv("POLYSTACK_HOME", str(tmp_path / "home"))
    pm = get_plugin_manager(load_entry_points=False)
    pm.register(CompletionOnlyPlugin(), name="completion-only")
    app = app_from_yaml(tmp_path, """\
        version: '2'
        image_name: batches
        apis: [batch_inference]
        providers:
          batch_inference:
          - {provider_id: only, provider_type: inline::completion-only, config: {}}
        """, pm)
    async with serve_app(app) as client:
        chat = await client.post("/v1/batch-inference/chat-completion",
                                 json={"model": "m", "messages_batch": [[{"role": "user", "content": "hi"}]]})
    assert chat.status_code == 501
    assert chat.json()["detail"] == "inline::completion-only does not serve batch_chat_completion of the batch_inference API"


async def test_providers_get_the_stacks_job_runner_and_jobs_persist_beside_the_registry(tmp_path, monkeypatch):
    monkeypatch.setenv("POLYSTACK_HOME", str(tmp_path / "home"))
    pm = get_plugin_manager(load_entry_points=False)
    pm.register(CompletionOnlyPlugin(), name="completion-only")
    app = app_from_yaml(tmp_path, """\
        version: '2'
        image_name: jobs
        apis: [batch_inference]
        providers:
          batch_inference:
          - {provider_id: only, provider_type: inline::completion-only, config: {}}
        """, pm)
    async with serve_app(app):
        runner = app.state.stack.jobs
        assert app.state.stack.impls["batch_inference"].jobs is runner
        job_id = await runner.submit("test", lambda ctx: sum(ctx.params["numbers"]), params={"numbers": [1, 2, 3]})
        job = await runner.wait(job_id, timeout=10)
    assert (job.status.value, job.result) == ("completed", 6)
    assert (tmp_path / "home" / "jobs" / "jobs.db").exists()
    assert app.state.stack.jobs is None  # stopped with the stack
