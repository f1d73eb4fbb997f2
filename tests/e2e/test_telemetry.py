"""Telemetry of the starter (`polystack run`, sqlite sink) driven by llama-stack-client 0.1.0:
a chat request's trace id header and queryable spans, a client traceparent honoured, posted
events, trace and span queries, the span tree, and spans exported to a dataset read back
through datasetio."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from llama_stack_client import APIStatusError, LlamaStackClient
from openai import OpenAI

from tests.support import ServerProcess, starter_with_server

LLM = "SmolLM2-135M-Instruct"
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE}-00f067aa0ba902b7-01"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    home = tmp_path_factory.mktemp("telemetry-home")
    with ServerProcess(str(starter_with_server(home / "run.yaml")), home=home) as proc:
        yield proc.wait_models_ready()


@pytest.fixture(scope="module")
def client(server):
    return LlamaStackClient(base_url=server.base_url, timeout=120)


@pytest.fixture(scope="module")
def chat(client):
    """A chat request through llama-stack-client with the caller's traceparent: (trace id header, response)."""
    raw = client.inference.with_raw_response.chat_completion(
        model_id=LLM, messages=[{"role": "user", "content": "Say hi."}],
        sampling_params={"max_tokens": 8}, extra_headers={"traceparent": TRACEPARENT})
    return raw.headers["x-trace-id"], raw.parse()


def test_a_chat_request_answers_with_its_trace_id_and_its_spans_are_queryable(client, chat):
    trace_id, response = chat
    assert response.completion_message.role == "assistant"
    assert trace_id == TRACE  # the client's traceparent
    trace = client.telemetry.get_trace(trace_id)
    root = client.telemetry.get_span(trace.root_span_id, trace_id=trace_id)
    assert root.parent_span_id == "00f067aa0ba902b7" and root.name == "POST /v1/inference/chat-completion"
    tree = client.telemetry.get_span_tree(trace.root_span_id)
    names = {span.name: span for span in tree.values()}
    # the router converts the Llama Stack call once; the provider serves it as an OpenAI-shaped request
    provider = names["provider inference.openai_chat_completion"]
    assert provider.attributes["gen_ai.request.model"] and provider.attributes["polystack.provider_id"] == "llama-cpp"
    assert provider.attributes["gen_ai.usage.output_tokens"] >= 1
    assert provider.parent_span_id == names["router inference.chat_completion"].span_id
    assert all(span.status == "ok" for span in tree.values())


def test_openai_route_spans_carry_token_counts(server, client):
    oai = OpenAI(base_url=server.base_url + "/v1", api_key="unused", max_retries=0)
    raw = oai.chat.completions.with_raw_response.create(
        model=LLM, messages=[{"role": "user", "content": "Count to three."}], max_tokens=6)
    completion = raw.parse()
    spans = client.telemetry.query_spans(
        attribute_filters=[{"key": "gen_ai.operation.name", "op": "eq", "value": "chat"},
                           {"key": "polystack.provider_id", "op": "eq", "value": "llama-cpp"}],
        attributes_to_return=["gen_ai.usage.input_tokens", "gen_ai.usage.output_tokens"])
    mine = [s for s in spans if s.trace_id == raw.headers["x-trace-id"]]
    assert [s.attributes for s in mine] == [{"gen_ai.usage.input_tokens": completion.usage.prompt_tokens,
                                             "gen_ai.usage.output_tokens": completion.usage.completion_tokens}]


def test_query_traces_with_filters_limit_and_order(client, chat):
    trace_id, _ = chat
    client.models.list()
    found = client.telemetry.query_traces(
        attribute_filters=[{"key": "gen_ai.request.model", "op": "eq", "value": LLM}], limit=50)
    assert trace_id in [t.trace_id for t in found]
    newest, = client.telemetry.query_traces(limit=1)
    oldest_first = client.telemetry.query_traces(order_by=["start_time", "trace_id"], limit=100)
    assert oldest_first[-1].trace_id == newest.trace_id != trace_id
    with pytest.raises(APIStatusError) as info:
        client.telemetry.query_traces(order_by=["colour"])
    assert info.value.status_code == 400 and "order_by[0]" in info.value.response.text


def test_posted_events_span_tree_and_depth(client):
    now = datetime.now(timezone.utc)

    def event(span_id, **fields):
        return {"trace_id": "client-trace", "span_id": span_id, "timestamp": now, **fields}

    client.telemetry.log_event(ttl_seconds=60, event=event("a", type="structured_log", attributes={"run": "r1"},
                                                           payload={"type": "span_start", "name": "eval"}))
    client.telemetry.log_event(ttl_seconds=60, event=event("b", type="structured_log",
                                                           payload={"type": "span_start", "name": "row", "parent_span_id": "a"}))
    client.telemetry.log_event(ttl_seconds=60, event=event("b", type="metric", metric="score", value=1, unit="points"))
    client.telemetry.log_event(ttl_seconds=60, event=event("b", type="unstructured_log", message="ok", severity="info"))
    client.telemetry.log_event(ttl_seconds=60, event=event("b", type="structured_log", attributes={"score": 1},
                                                           payload={"type": "span_end", "status": "ok"}))
    assert set(client.telemetry.get_span_tree("a")) == {"a", "b"}
    assert set(client.telemetry.get_span_tree("a", max_depth=0)) == {"a"}
    spans = client.telemetry.query_spans(attribute_filters=[{"key": "run", "op": "eq", "value": "r1"}],
                                         attributes_to_return=["score", "run"])
    assert {s.span_id: s.attributes for s in spans} == {"a": {"run": "r1"}, "b": {"score": 1}}


def test_spans_exported_to_a_dataset_are_read_back_through_datasetio(client, chat):
    trace_id, _ = chat
    client.telemetry.save_spans_to_dataset(
        attribute_filters=[{"key": "gen_ai.request.model", "op": "eq", "value": LLM}],
        attributes_to_save=["gen_ai.request.model", "polystack.provider_id"], dataset_id="chat-spans")
    rows = client.datasetio.get_rows_paginated(dataset_id="chat-spans", rows_in_page=100).rows
    mine = [r for r in rows if r["trace_id"] == trace_id]
    assert {r["name"] for r in mine} >= {"router inference.chat_completion", "provider inference.openai_chat_completion"}
    assert {r["polystack.provider_id"] for r in mine} == {None, "llama-cpp"}
    assert all(r["span_id"] and r["start_time"] and r["gen_ai.request.model"] for r in mine)
    assert client.datasets.retrieve("chat-spans").provider_id == "localfs"


def test_bad_telemetry_input_is_a_4xx_naming_the_field(client):
    with pytest.raises(APIStatusError) as info:
        client.telemetry.log_event(ttl_seconds=-1, event={
            "type": "unstructured_log", "trace_id": "t", "span_id": "s", "timestamp": datetime.now(timezone.utc),
            "message": "m", "severity": "info"})
    assert info.value.status_code == 400 and "ttl_seconds" in info.value.response.text
    with pytest.raises(APIStatusError) as info:
        client.telemetry.get_span_tree("no-such-span", max_depth=-1)
    assert info.value.status_code == 400 and "max_depth" in info.value.response.text
    with pytest.raises(APIStatusError) as info:
        client.telemetry.get_trace("no-such-trace")
    assert info.value.status_code == 404
