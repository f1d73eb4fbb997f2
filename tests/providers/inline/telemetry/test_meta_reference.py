"""inline::meta-reference telemetry in-process: request traces through a remote::openai
provider to a loopback upstream, the query routes, posted events, export to a dataset;
the span store on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import os

import pytest

from stack import tracing
from tests.support import app_from_yaml, serve_app

RUN_CONFIG = """\
version: '2'
image_name: telemetry-test
apis: [inference, telemetry, datasetio]
providers:
  inference:
  - provider_id: upstream
    provider_type: remote::openai
    config: {{url: "{url}", api_key: key-1}}
  telemetry:
  - provider_id: meta-reference
    provider_type: inline::meta-reference
    config: {{sinks: [sqlite], store: {store}, flush_interval: 0.05}}
  datasetio:
  - provider_id: localfs
    provider_type: inline::localfs
    config: {{}}
models:
- model_id: chat
  provider_id: upstream
  provider_model_id: upstream-model
  model_type: llm
"""
CHAT = {"model": "chat", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8}
TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


@pytest.fixture
async def client(tmp_path, upstream, store_config, monkeypatch):
    monkeypatch.setenv("POLYSTACK_HOME", str(tmp_path / "home"))
    store = json.dumps(store_config.model_dump(mode="json", exclude_none=True))
    async with serve_app(app_from_yaml(tmp_path, RUN_CONFIG.format(url=upstream.url, store=store))) as client:
        yield client
    assert not tracing.enabled(), "shutdown uninstalls the collector"


async def spans_of(client, trace_id: str) -> dict[str, dict]:
    trace = (await client.get(f"/v1/telemetry/traces/{trace_id}")).json()
    tree = await client.get(f"/v1/telemetry/spans/{trace['root_span_id']}/tree")
    assert tree.status_code == 200, tree.text
    return tree.json()["data"]


async def test_a_chat_request_is_a_trace_of_router_provider_and_upstream_spans(client, upstream):
    response = await client.post("/v1/chat/completions", json=CHAT)
    assert response.status_code == 200, response.text
    trace_id = response.headers["x-trace-id"]
    assert len(trace_id) == 32

    spans = await spans_of(client, trace_id)
    by_name = {s["name"]: s for s in spans.values()}
    root = by_name["POST /v1/chat/completions"]
    router = by_name["router inference.openai_chat_completion"]
    provider = by_name["provider inference.openai_chat_completion"]
    call = by_name["upstream POST"]
    assert root["parent_span_id"] is None and root["attributes"]["http.response.status_code"] == 200
    assert router["parent_span_id"] == root["span_id"]
    assert provider["parent_span_id"] == router["span_id"]
    assert call["parent_span_id"] == provider["span_id"]
    assert router["attributes"]["gen_ai.request.model"] == "chat"
    assert router["attributes"]["gen_ai.operation.name"] == "chat"
    assert provider["attributes"].items() >= {
        "gen_ai.request.model": "upstream-model", "gen_ai.operation.name": "chat",
        "gen_ai.usage.input_tokens": 5, "gen_ai.usage.output_tokens": 4,
        "polystack.provider_id": "upstream", "polystack.provider_type": "remote::openai"}.items()
    assert call["attributes"]["url.full"].endswith("/v1/chat/completions")
    assert all(s["status"] == "ok" and s["end_time"] for s in spans.values())
    # the upstream continues the same trace
    assert upstream.requests[-1].headers["traceparent"] == f"00-{trace_id}-{call['span_id']}-01"


async def test_a_client_traceparent_is_honoured(client):
    response = await client.post("/v1/chat/completions", json=CHAT, headers={"traceparent": TRACEPARENT})
    assert response.headers["x-trace-id"] == "0af7651916cd43dd8448eb211c80319c"
    trace = (await client.get("/v1/telemetry/traces/0af7651916cd43dd8448eb211c80319c")).json()
    root = (await client.get(f"/v1/telemetry/traces/{trace['trace_id']}/spans/{trace['root_span_id']}")).json()
    assert root["parent_span_id"] == "b7ad6b7169203331"


async def test_a_malformed_traceparent_starts_a_new_trace(client):
    response = await client.post("/v1/chat/completions", json=CHAT, headers={"traceparent": "00-xyz-01"})
    assert response.status_code == 200
    assert len(response.headers["x-trace-id"]) == 32


async def test_a_failed_request_is_a_trace_with_an_error_status(client, upstream):
    from tests.providers.remote.inference.doubles import answer

    upstream.then(answer(400, {"error": {"message": "nope"}}))
    response = await client.post("/v1/chat/completions", json=CHAT)
    assert response.status_code == 400
    spans = await spans_of(client, response.headers["x-trace-id"])
    provider = next(s for s in spans.values() if s["name"].startswith("provider "))
    assert provider["status"] == "error" and provider["attributes"]["error.type"]


async def test_query_traces_filters_orders_and_pages(client):
    ids = []
    for _ in range(3):
        ids.append((await client.post("/v1/chat/completions", json=CHAT)).headers["x-trace-id"])
        await asyncio.sleep(0.002)
    await client.get("/v1/models")

    def query(**params):
        if "attribute_filters" in params:  # structured: JSON in the query string
            params["attribute_filters"] = json.dumps(params["attribute_filters"])
        return client.get("/v1/telemetry/traces", params=params)

    chats = (await query(attribute_filters=[{"key": "gen_ai.request.model", "op": "eq", "value": "chat"}])).json()["data"]
    assert [t["trace_id"] for t in chats] == ids[::-1]  # newest first
    oldest_first = (await query(attribute_filters=[{"key": "gen_ai.request.model", "op": "eq", "value": "chat"}],
                                order_by=["start_time"], limit=2, offset=1)).json()["data"]
    assert [t["trace_id"] for t in oldest_first] == ids[1:3]
    many_tokens = (await query(attribute_filters=[{"key": "gen_ai.usage.input_tokens", "op": "gt", "value": 4}])).json()["data"]
    assert len(many_tokens) == 3
    not_chats = (await query(attribute_filters=[{"key": "http.route", "op": "ne", "value": "/v1/chat/completions"},
                                                {"key": "name", "op": "eq", "value": "GET /v1/models"}])).json()["data"]
    assert len(not_chats) == 1 and not_chats[0]["trace_id"] not in ids


@pytest.mark.parametrize("params, field", [
    ({"limit": -1}, "limit"),
    ({"offset": -5}, "offset"),
    ({"order_by": ["-start_time", "size"]}, "order_by[1]"),
    ({"attribute_filters": json.dumps([{"key": "k", "op": "like", "value": 1}])}, "attribute_filters"),
    ({"attribute_filters": json.dumps([{"key": "k", "op": "gt", "value": [1]}])}, "attribute_filters[0].value"),
    ({"attribute_filters": "not json"}, "attribute_filters"),
    ({"attribute_filters": "{'key': 'k', 'op': 'eq'"}, "attribute_filters"),  # a broken Python repr
    ({"attribute_filters": "{'key': 'k', 'op': 'eq', 'value': __import__('os')}"}, "attribute_filters"),
])
async def test_bad_trace_queries_are_4xx_naming_the_field(client, params, field):
    response = await client.get("/v1/telemetry/traces", params=params)
    assert 400 <= response.status_code < 500, response.text
    assert field in response.text


async def test_llama_stack_client_query_forms_are_understood(client):
    """llama-stack-client 0.1.0 sends Python reprs joined by commas, and comma-joined string lists."""
    trace_id = (await client.post("/v1/chat/completions", json=CHAT)).headers["x-trace-id"]
    response = await client.get("/v1/telemetry/spans", params={
        "attribute_filters": "{'key': 'gen_ai.request.model', 'op': 'eq', 'value': 'upstream-model'},"
                             "{'key': 'gen_ai.usage.input_tokens', 'op': 'gt', 'value': 1}",
        "attributes_to_return": "gen_ai.usage.input_tokens,gen_ai.usage.output_tokens"})
    assert response.status_code == 200, response.text
    [span] = response.json()["data"]
    assert span["trace_id"] == trace_id
    assert span["attributes"] == {"gen_ai.usage.input_tokens": 5, "gen_ai.usage.output_tokens": 4}


async def test_unknown_traces_and_spans_are_404(client):
    assert (await client.get("/v1/telemetry/traces/nope")).status_code == 404
    assert (await client.get("/v1/telemetry/traces/nope/spans/nope")).status_code == 404
    assert (await client.get("/v1/telemetry/spans/nope/tree")).status_code == 404


async def test_posted_events_make_spans_logs_and_metrics(client):
    def event(**fields):
        return {"trace_id": "t-posted", "span_id": "s-root", "timestamp": "2025-01-20T10:00:00Z", **fields}

    posted = [
        event(type="structured_log", payload={"type": "span_start", "name": "job"}, attributes={"session_id": "abc"}),
        event(span_id="s-child", type="structured_log", payload={"type": "span_start", "name": "step", "parent_span_id": "s-root"}),
        event(span_id="s-child", type="unstructured_log", message="working", severity="info"),
        event(span_id="s-child", type="metric", metric="rows", value=3, unit="rows"),
        event(span_id="s-child", timestamp="2025-01-20T10:00:02Z", type="structured_log",
              payload={"type": "span_end", "status": "error"}, attributes={"output": "half"}),
    ]
    for body in posted:
        response = await client.post("/v1/telemetry/events", json={"event": body, "ttl_seconds": 60})
        assert response.status_code == 200, response.text

    trace = (await client.get("/v1/telemetry/traces/t-posted")).json()
    assert trace["root_span_id"] == "s-root" and trace["end_time"] is None  # still running
    tree = (await client.get("/v1/telemetry/spans/s-root/tree", params={"max_depth": 0})).json()["data"]
    assert list(tree) == ["s-root"]
    tree = (await client.get("/v1/telemetry/spans/s-root/tree",
                             params={"attributes_to_return": ["output"]})).json()["data"]
    assert tree["s-child"]["status"] == "error" and tree["s-child"]["attributes"] == {"output": "half"}
    assert tree["s-child"]["end_time"].startswith("2025-01-20T10:00:02")

    spans = (await client.get("/v1/telemetry/spans", params={
        "attribute_filters": json.dumps([{"key": "session_id", "op": "eq", "value": "abc"}]),
        "attributes_to_return": ["output"]})).json()["data"]
    assert [s["span_id"] for s in spans] == ["s-child"]
    assert list((await client.get("/v1/telemetry/spans/s-child/tree")).json()["data"]) == ["s-child"]

    # a second child and the root end together (one batch): each span is listed once, in its last state
    for body in [
        event(span_id="s-two", type="structured_log", payload={"type": "span_start", "name": "step", "parent_span_id": "s-root"}),
        event(span_id="s-two", timestamp="2025-01-20T10:00:03Z", type="structured_log", payload={"type": "span_end", "status": "ok"}),
        event(timestamp="2025-01-20T10:00:04Z", type="structured_log", payload={"type": "span_end", "status": "ok"}),
    ]:
        assert (await client.post("/v1/telemetry/events", json={"event": body, "ttl_seconds": 0})).status_code == 200
    tree = (await client.get("/v1/telemetry/spans/s-root/tree")).json()["data"]
    assert sorted(tree) == ["s-child", "s-root", "s-two"] and all(s["end_time"] for s in tree.values())
    [listed] = [t for t in (await client.get("/v1/telemetry/traces")).json()["data"] if t["trace_id"] == "t-posted"]
    assert listed["end_time"].startswith("2025-01-20T10:00:04")


async def test_a_span_end_without_its_start_is_a_400_naming_the_span(client):
    response = await client.post("/v1/telemetry/events", json={"event": {
        "trace_id": "t", "span_id": "never", "timestamp": "2025-01-20T10:00:00Z", "type": "structured_log",
        "payload": {"type": "span_end", "status": "ok"}}, "ttl_seconds": 0})
    assert response.status_code == 400 and "event.span_id" in response.text
    bad = await client.post("/v1/telemetry/events", json={"event": {"type": "metric"}, "ttl_seconds": 0})
    assert bad.status_code == 422 and "trace_id" in bad.text


async def test_spans_exported_to_a_dataset_read_back_through_datasetio(client):
    trace_id = (await client.post("/v1/chat/completions", json=CHAT)).headers["x-trace-id"]
    response = await client.post("/v1/telemetry/spans/export", json={
        "attribute_filters": [{"key": "gen_ai.request.model", "op": "eq", "value": "chat"}],
        "attributes_to_save": ["gen_ai.request.model", "gen_ai.usage.output_tokens"],
        "dataset_id": "chat-spans"})
    assert response.status_code == 200, response.text
    rows = (await client.get("/v1/datasetio/rows", params={"dataset_id": "chat-spans", "rows_in_page": 10})).json()["rows"]
    assert {r["trace_id"] for r in rows} == {trace_id}
    assert {r["name"] for r in rows} == {"router inference.openai_chat_completion", "provider inference.openai_chat_completion"}
    assert {r["gen_ai.usage.output_tokens"] for r in rows} == {None, 4}
    clash = await client.post("/v1/telemetry/spans/export", json={
        "attribute_filters": [], "attributes_to_save": ["name"], "dataset_id": "x"})
    assert clash.status_code == 400 and "attributes_to_save" in clash.text


async def test_health_shows_the_buffer_and_drops(client):
    health = (await client.get("/v1/health")).json()
    assert health["telemetry"].keys() >= {"buffered_spans", "exported_spans", "dropped"}
    assert health["telemetry"]["dropped"] == 0


async def test_without_a_telemetry_provider_nothing_is_traced(tmp_path, upstream, monkeypatch):
    monkeypatch.setenv("POLYSTACK_HOME", str(tmp_path / "home"))
    untraced = RUN_CONFIG.format(url=upstream.url, store="{}").split("  telemetry:")[0].replace(", telemetry, datasetio", "")
    untraced += "models:" + RUN_CONFIG.split("models:")[1]
    async with serve_app(app_from_yaml(tmp_path, untraced)) as client:
        assert not client.app.state.stack.traced
        response = await client.post("/v1/chat/completions", json=CHAT, headers={"traceparent": TRACEPARENT})
        assert response.status_code == 200 and "x-trace-id" not in response.headers
        assert "traceparent" not in upstream.requests[-1].headers
        assert "telemetry" not in (await client.get("/v1/health")).json()


def span_store():
    [store] = [sink for sink in tracing.collector().sinks if hasattr(sink, "prune")]
    return store


async def test_expired_posted_spans_and_events_are_pruned_and_others_kept(client):
    def event(span_id, ttl, **fields):
        return {"event": {"trace_id": f"t-{span_id}", "span_id": span_id, "timestamp": "2025-01-20T10:00:00Z",
                          **fields}, "ttl_seconds": ttl}

    for span_id, ttl in (("short", 60), ("forever", 0)):
        assert (await client.post("/v1/telemetry/events", json=event(
            span_id, ttl, type="structured_log", payload={"type": "span_start", "name": "job"}))).status_code == 200
        assert (await client.post("/v1/telemetry/events", json=event(
            span_id, ttl, type="metric", metric="rows", value=1, unit="rows"))).status_code == 200
    await tracing.collector().flush()
    store = span_store()
    an_hour_on = tracing.time.time_ns() + 3600 * 10**9
    assert await store.prune(an_hour_on) == 2  # the short-lived span's chunk and its metric event
    assert (await client.get("/v1/telemetry/traces/t-short")).status_code == 404
    assert (await client.get("/v1/telemetry/traces/t-forever")).status_code == 200
    events = await store.store.fetch_all("events")
    assert [e["span_id"] for e in events] == ["forever"]


async def test_request_traces_expire_after_the_configured_ttl(tmp_path, upstream, store_config, monkeypatch):
    monkeypatch.setenv("POLYSTACK_HOME", str(tmp_path / "home"))
    store = json.dumps(store_config.model_dump(mode="json", exclude_none=True))
    config = RUN_CONFIG.format(url=upstream.url, store=store).replace("flush_interval: 0.05", "ttl_seconds: 60")
    async with serve_app(app_from_yaml(tmp_path, config)) as client:
        trace_id = (await client.post("/v1/chat/completions", json=CHAT)).headers["x-trace-id"]
        await tracing.collector().flush()
        store = span_store()
        await store.sync()  # the writer process's backlog written, as a read waits for it
        assert await store.prune(tracing.time.time_ns()) == 0  # not yet
        assert await store.prune(tracing.time.time_ns() + 61 * 10**9) == 1
        assert (await client.get(f"/v1/telemetry/traces/{trace_id}")).status_code == 404


async def test_sampling_follows_the_callers_flag_and_the_sample_rate(tmp_path, upstream, monkeypatch):
    monkeypatch.setenv("POLYSTACK_HOME", str(tmp_path / "home"))
    store = json.dumps({"type": "sqlite", "db_path": str(tmp_path / "spans.db")})
    config = RUN_CONFIG.format(url=upstream.url, store=store).replace("flush_interval: 0.05", "sample_rate: 0")
    async with serve_app(app_from_yaml(tmp_path, config)) as client:
        unsampled = await client.post("/v1/chat/completions", json=CHAT)
        assert unsampled.status_code == 200 and "x-trace-id" not in unsampled.headers
        assert "traceparent" not in upstream.requests[-1].headers  # nothing under it is recorded either
        declined = await client.post("/v1/chat/completions", json=CHAT, headers={"traceparent": TRACEPARENT[:-2] + "00"})
        assert "x-trace-id" not in declined.headers
        chosen = await client.post("/v1/chat/completions", json=CHAT, headers={"traceparent": TRACEPARENT})
        assert chosen.headers["x-trace-id"] == TRACEPARENT.split("-")[1]
        await tracing.collector().flush()
        traces = (await client.get("/v1/telemetry/traces")).json()["data"]
        assert [t["trace_id"] for t in traces] == [TRACEPARENT.split("-")[1]]
        assert len(await spans_of(client, traces[0]["trace_id"])) == 4  # root, router, provider, upstream


async def test_filters_on_name_and_status_read_a_same_named_attribute_first(client):
    def start(trace_id, span_name, **attributes):
        return {"event": {"trace_id": trace_id, "span_id": f"{trace_id}-s", "timestamp": "2025-01-20T10:00:00Z",
                          "type": "structured_log", "payload": {"type": "span_start", "name": span_name},
                          "attributes": attributes}, "ttl_seconds": 0}

    for body in (start("t-plain", "job"), start("t-renamed", "job", name="other"), start("t-named", "task", name="job")):
        assert (await client.post("/v1/telemetry/events", json=body)).status_code == 200

    async def traces(*conditions):
        response = await client.get("/v1/telemetry/traces", params={
            "attribute_filters": json.dumps([{"key": k, "op": op, "value": v} for k, op, v in conditions])})
        assert response.status_code == 200, response.text
        return sorted(t["trace_id"] for t in response.json()["data"] if t["trace_id"].startswith("t-"))

    assert await traces(("name", "eq", "job")) == ["t-named", "t-plain"]  # t-renamed's attribute says "other"
    assert await traces(("name", "ne", "job")) == ["t-renamed"]
    assert await traces(("status", "eq", "ok")) == ["t-named", "t-plain", "t-renamed"]  # running spans: "ok"
    assert await traces(("name", "eq", "job"), ("status", "eq", "error")) == []


@pytest.mark.parametrize(("span_writer", "db_path", "by_child"), [
    ("process", "spans.db", True),
    ("thread", "spans.db", False),
    ("process", ":memory:", False),  # an in-memory database exists in the server process alone
])
async def test_span_writer_picks_who_writes_request_spans(tmp_path, upstream, monkeypatch, span_writer, db_path,
                                                          by_child):
    monkeypatch.setenv("POLYSTACK_HOME", str(tmp_path / "home"))
    path = db_path if db_path == ":memory:" else str(tmp_path / db_path)
    store = json.dumps({"type": "sqlite", "db_path": path})
    config = RUN_CONFIG.format(url=upstream.url, store=store).replace(
        "flush_interval: 0.05", f"flush_interval: 0.05, span_writer: {span_writer}")
    async with serve_app(app_from_yaml(tmp_path, config)) as client:
        writer = span_store().writer
        assert (writer is not None) == by_child
        if by_child:
            assert await writer.wait_ready() and writer.pid != os.getpid()
        trace_id = (await client.post("/v1/chat/completions", json=CHAT)).headers["x-trace-id"]
        assert len(await spans_of(client, trace_id)) == 4
        health = (await client.get("/v1/health")).json()
        assert "meta-reference" not in health.get("providers", {})  # that block is models' load states
        shown = {k: v for k, v in health["telemetry"].items() if k.startswith("span_writer")}
        if by_child:
            # the backlog: spans of requests since the read, flushed and not yet written (0 or a few)
            assert isinstance(shown.pop("span_writer_backlog_spans"), int)
            assert shown == {"span_writer": "process", "span_writer_pid": writer.pid, "span_writer_restarts": 0,
                             "span_writer_dropped": 0, "span_writer_lost": 0}
        else:
            assert shown == {"span_writer": "thread"}
