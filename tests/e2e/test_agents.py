"""Agents end to end: a real ``polystack run`` of the starter distribution driven
by llama-stack-client 0.1.0 and its ``Agent`` helper. The tiny default model
answers badly, so these assert the mechanics (events, steps, persistence) and
force tool use with ``tool_choice`` where it would not choose a tool."""

from __future__ import annotations

import asyncio
import http.server
import json
import os
import re
import threading
import time

import httpx
import pytest
import yaml
from llama_stack_client import APIStatusError, AsyncLlamaStackClient, LlamaStackClient
from llama_stack_client.lib.agents.agent import Agent
from llama_stack_client.lib.agents.client_tool import ClientTool
from llama_stack_client.lib.agents.event_logger import EventLogger
from llama_stack_client.types import ToolResponseMessage
from llama_stack_client.types.tool_def_param import Parameter

from tests.support import REPO, ServerProcess, starter_with_mcp_config

MODEL = "SmolLM2-135M-Instruct"
GREEDY = {"strategy": {"type": "greedy"}, "max_tokens": 48}


def agent_config(**overrides) -> dict:
    return {"model": MODEL, "instructions": "You are a helpful assistant.", "enable_session_persistence": True,
            "sampling_params": GREEDY, **overrides}


ECHO = "acme/echo-1"  # the acme plugin's echo model: a test double that never chooses a tool


@pytest.fixture(scope="module")
def files_dir(tmp_path_factory):
    """A folder file:// documents may be read from (server.fetch.allow_dirs)."""
    return tmp_path_factory.mktemp("agent-files")


@pytest.fixture(scope="module")
def server(acme_plugin_path, tmp_path_factory, files_dir):
    """The starter distribution plus an MCP tool runtime and the acme echo model; local files and
    loopback URLs are allowed so that documents can be served to the agent."""
    home = tmp_path_factory.mktemp("agents-home")
    config = starter_with_mcp_config()
    config["providers"]["inference"].append({"provider_id": "acme", "provider_type": "remote::acme", "config": {}})
    config["models"].append({"model_id": ECHO, "provider_id": "acme", "provider_model_id": "echo-1", "model_type": "llm"})
    config["server"]["fetch"] = {"allow_dirs": [str(files_dir)], "allow_networks": ["127.0.0.1/32"]}
    run_yaml = home / "run.yaml"
    run_yaml.write_text(yaml.safe_dump(config))
    with ServerProcess(str(run_yaml), home=home, pythonpath=[acme_plugin_path]) as proc:
        yield proc


@pytest.fixture
def client(server):
    return LlamaStackClient(base_url=server.base_url, timeout=120)


class WeatherTool(ClientTool):
    """A client tool: the client, not the server, runs it."""

    def __init__(self) -> None:
        self.calls: list[dict] = []

    def get_name(self) -> str:
        return "get_weather"

    def get_description(self) -> str:
        return "Get the current weather of a city"

    def get_params_definition(self) -> dict[str, Parameter]:
        return {"city": Parameter(name="city", parameter_type="string", description="the city", required=True)}

    def run(self, messages):
        call = messages[-1].tool_calls[0]
        self.calls.append(call.arguments)
        return [ToolResponseMessage(role="tool", call_id=call.call_id, tool_name=call.tool_name, content="Sunny, 21 C")]


def steps_of(turn, step_type: str) -> list:
    return [s for s in turn.steps if s.step_type == step_type]


def calls_of(turn, tool_name: str) -> list:
    """The tool execution steps of ``turn`` that ran ``tool_name``."""
    return [s for s in steps_of(turn, "tool_execution") if s.tool_calls[0].tool_name == tool_name]


def test_client_tool_turn_with_the_agent_helper(client):
    weather = WeatherTool()
    agent = Agent(client, agent_config(client_tools=[weather.get_tool_definition()], tool_choice="required"),
                  client_tools=(weather,))
    session_id = agent.create_session("weather")

    first = list(agent.create_turn([{"role": "user", "content": "What is the weather in Paris?"}], session_id=session_id))
    kinds = [c.event.payload.event_type for c in first if hasattr(c, "event")]
    assert kinds[0] == "turn_start" and "step_complete" in kinds
    answer = first[-1]  # the helper ran the tool the turn ended with
    assert isinstance(answer, ToolResponseMessage) and answer.content == "Sunny, 21 C"
    assert weather.calls and "city" in weather.calls[0]

    second = list(agent.create_turn([answer], session_id=session_id))
    assert second[0].event.payload.event_type == "turn_start"
    session = client.agents.session.retrieve(agent_id=agent.agent_id, session_id=session_id)
    assert len(session.turns) == 2
    one, two = session.turns
    assert one.output_message.tool_calls[0].tool_name == "get_weather"
    assert [s.step_type for s in one.steps] == ["inference"]
    assert two.input_messages[0].role == "tool" and two.input_messages[0].call_id == answer.call_id
    assert two.completed_at is not None and steps_of(two, "inference")


def test_streamed_turn_events_in_order(client):
    agent_id = client.agents.create(agent_config=agent_config()).agent_id
    session_id = client.agents.session.create(agent_id=agent_id, session_name="s").session_id
    chunks = list(client.agents.turn.create(agent_id=agent_id, session_id=session_id, stream=True,
                                            messages=[{"role": "user", "content": "Say hello."}]))
    payloads = [c.event.payload for c in chunks]
    assert [p.event_type for p in payloads][:2] == ["turn_start", "step_start"]
    assert payloads[-2].event_type == "step_complete" and payloads[-1].event_type == "turn_complete"
    progress = [p for p in payloads if p.event_type == "step_progress"]
    text = "".join(p.delta.text for p in progress)
    turn = payloads[-1].turn
    assert text and turn.output_message.content == text
    step = turn.steps[0]
    fetched = client.agents.steps.retrieve(agent_id=agent_id, session_id=session_id, turn_id=turn.turn_id, step_id=step.step_id)
    assert fetched.step.inference_model_response.content == text  # the client renames model_response
    assert client.agents.turn.retrieve(agent_id=agent_id, session_id=session_id, turn_id=turn.turn_id).turn_id == turn.turn_id


def test_code_interpreter_turn(client):
    agent_id = client.agents.create(agent_config=agent_config(
        toolgroups=["builtin::code_interpreter"], tool_choice="required", max_infer_iters=2)).agent_id
    session_id = client.agents.session.create(agent_id=agent_id, session_name="code").session_id
    turn = client.agents.turn.create(agent_id=agent_id, session_id=session_id, stream=False,
                                     messages=[{"role": "user", "content": "What is 6*7? Use code."}])
    execution = steps_of(turn, "tool_execution")[0]
    assert execution.tool_calls[0].tool_name == "code_interpreter"
    result = execution.tool_responses[0].content
    # whatever code the tiny model wrote, the sandbox ran it and said how it went
    assert result.startswith(("completed", "error")), result


def test_mcp_tool_turn(client, mcp_server):
    client.toolgroups.register(toolgroup_id="mcp::agent-test", provider_id="mcp", mcp_endpoint={"uri": mcp_server.url})
    try:
        # "group/tool" offers the model one tool of the group
        agent_id = client.agents.create(agent_config=agent_config(
            toolgroups=["mcp::agent-test/echo"], tool_choice="required", max_infer_iters=2)).agent_id
        session_id = client.agents.session.create(agent_id=agent_id, session_name="mcp").session_id
        turn = client.agents.turn.create(agent_id=agent_id, session_id=session_id, stream=False,
                                         messages=[{"role": "user", "content": "Echo the word hello."}])
        execution = steps_of(turn, "tool_execution")[0]
        call = execution.tool_calls[0]
        assert call.tool_name == "echo"
        # the MCP server's echo answered what the model sent it
        text = call.arguments["text"]
        result = " ".join(item.text for item in execution.tool_responses[0].content)
        assert (text.upper() if call.arguments.get("shout") else text) in result
    finally:
        client.toolgroups.unregister(toolgroup_id="mcp::agent-test")


def test_rag_turn_cites_inserted_documents(client):
    client.vector_dbs.register(vector_db_id="agent-facts", embedding_model="all-MiniLM-L6-v2", embedding_dimension=384)
    try:
        client.tool_runtime.rag_tool.insert(vector_db_id="agent-facts", chunk_size_in_tokens=128, documents=[
            {"document_id": "octopus", "content": "An octopus has three hearts and blue blood.", "metadata": {}},
            {"document_id": "volcano", "content": "Volcanoes erupt when magma rises through the crust.", "metadata": {}},
        ])
        agent_id = client.agents.create(agent_config=agent_config(
            toolgroups=[{"name": "builtin::rag", "args": {"vector_db_ids": ["agent-facts"]}}],
            tool_choice="required", max_infer_iters=2)).agent_id
        session_id = client.agents.session.create(agent_id=agent_id, session_name="rag").session_id
        turn = client.agents.turn.create(agent_id=agent_id, session_id=session_id, stream=False,
                                         messages=[{"role": "user", "content": "How many hearts does an octopus have?"}])
        retrieval, execution = steps_of(turn, "tool_execution")[:2]
        assert retrieval.tool_calls[0].tool_name == "query_from_memory"  # every turn retrieves first
        assert execution.tool_calls[0].tool_name == "knowledge_search"
        cited = " ".join(item.text for item in execution.tool_responses[0].content)
        assert "document_id: octopus" in cited or "document_id: volcano" in cited
    finally:
        client.vector_dbs.unregister("agent-facts")


def test_documents_attached_to_a_turn_are_retrieved(client):
    agent_id = client.agents.create(agent_config=agent_config(model=ECHO, toolgroups=["builtin::rag"])).agent_id
    session_id = client.agents.session.create(agent_id=agent_id, session_name="docs").session_id
    turn = client.agents.turn.create(
        agent_id=agent_id, session_id=session_id, stream=False,
        messages=[{"role": "user", "content": "What is the project codename?"}],
        documents=[{"content": "The project codename is Bluefin.", "mime_type": "text/plain"}],
    )
    (execution,) = calls_of(turn, "query_from_memory")
    assert "Bluefin" in turn.output_message.content  # the model got it with the question
    cited = " ".join(item.text for item in execution.tool_responses[0].content)
    assert "The project codename is Bluefin." in cited
    client.agents.session.delete(agent_id=agent_id, session_id=session_id)
    assert f"agent-session-{session_id}" not in [db.identifier for db in client.vector_dbs.list()]


def test_streamed_tool_call_deltas_join_to_the_arguments(client):
    """EventLogger prints each tool_call delta as it comes: joined, they are the call's arguments, once."""
    weather = WeatherTool()
    agent_id = client.agents.create(agent_config=agent_config(
        client_tools=[weather.get_tool_definition()], tool_choice="required")).agent_id
    session_id = client.agents.session.create(agent_id=agent_id, session_name="deltas").session_id
    chunks = list(client.agents.turn.create(agent_id=agent_id, session_id=session_id, stream=True,
                                            messages=[{"role": "user", "content": "What is the weather in Paris?"}]))
    printed = "".join(log.content for log in EventLogger().log(chunks) if log.color == "cyan")
    pieces = [c.event.payload.delta.tool_call for c in chunks if c.event.payload.event_type == "step_progress"
              and c.event.payload.delta.type == "tool_call" and c.event.payload.delta.parse_status == "in_progress"]
    (call,) = chunks[-1].event.payload.turn.output_message.tool_calls
    assert len(pieces) > 1 and printed == "".join(pieces)
    assert json.loads(printed) == call.arguments


def test_chat_completion_streams_tool_call_pieces(client):
    stream = client.inference.chat_completion(
        model_id=MODEL, messages=[{"role": "user", "content": "What is the weather in Paris?"}],
        tools=[{"tool_name": "get_weather", "description": "Weather of a city",
                "parameters": {"city": {"param_type": "string", "required": True}}}],
        tool_choice="required", stream=True, sampling_params=GREEDY)
    deltas = [c.event.delta for c in stream if c.event.delta.type == "tool_call"]
    *pieces, done = deltas
    assert {d.parse_status for d in pieces} == {"in_progress"} and done.parse_status == "succeeded"
    assert json.loads("".join(d.tool_call for d in pieces)) == done.tool_call.arguments


def test_rag_retrieves_every_turn_even_when_the_model_calls_no_tool(client):
    client.vector_dbs.register(vector_db_id="echo-facts", embedding_model="all-MiniLM-L6-v2", embedding_dimension=384)
    try:
        client.tool_runtime.rag_tool.insert(vector_db_id="echo-facts", chunk_size_in_tokens=128, documents=[
            {"document_id": "octopus", "content": "An octopus has three hearts and blue blood.", "metadata": {}}])
        agent = Agent(client, agent_config(model=ECHO, toolgroups=[
            {"name": "builtin::rag", "args": {"vector_db_ids": ["echo-facts"]}}]))
        session_id = agent.create_session("rag-echo")
        chunks = list(agent.create_turn([{"role": "user", "content": "How many hearts has an octopus?"}],
                                        session_id=session_id))
        logs = [str(log) for log in EventLogger().log(chunks)]
        assert any(line.startswith("tool_execution> Tool:query_from_memory") for line in logs), logs
        assert any(line.startswith("tool_execution> fetched") and "bytes from memory" in line for line in logs), logs
        turn = chunks[-1].event.payload.turn
        assert [s.step_type for s in turn.steps] == ["tool_execution", "inference"]
        # the echo model saw the retrieved text as the context of the user's message
        assert "An octopus has three hearts" in turn.output_message.content
        # knowledge_search stays callable: a model may still search itself
        again = client.agents.turn.create(agent_id=agent.agent_id, session_id=session_id, stream=False, messages=[
            {"role": "user", "content": 'call:knowledge_search {"query": "octopus hearts"}'}])
        (search,) = calls_of(again, "knowledge_search")
        assert "document_id: octopus" in " ".join(item.text for item in search.tool_responses[0].content)
    finally:
        client.vector_dbs.unregister("echo-facts")


@pytest.fixture(scope="module")
def csv_url():
    """A CSV served over HTTP on loopback (which the server's fetch config allows)."""
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            if self.path != "/weather.csv":
                self.send_error(404)
                return
            body = b"city,temp\nParis,21\nOslo,4\n"
            self.send_response(200)
            self.send_header("Content-Type", "text/csv")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def _read_with_code(client, agent_id, session_id, path):
    """A turn in which the echo model calls code_interpreter to print the file at ``path``."""
    code = json.dumps({"code": f"print(open({path!r}).read())"})
    turn = client.agents.turn.create(agent_id=agent_id, session_id=session_id, stream=False,
                                     messages=[{"role": "user", "content": f"call:code_interpreter {code}"}])
    (execution,) = calls_of(turn, "code_interpreter")
    return execution.tool_responses[0].content


def test_url_documents_are_downloaded_for_the_code_interpreter(client, csv_url, files_dir):
    (files_dir / "notes.txt").write_text("Temperatures are in Celsius.")
    agent_id = client.agents.create(agent_config=agent_config(model=ECHO, toolgroups=["builtin::code_interpreter"])).agent_id
    session_id = client.agents.session.create(agent_id=agent_id, session_name="csv").session_id
    turn = client.agents.turn.create(agent_id=agent_id, session_id=session_id, stream=False,
                                     messages=[{"role": "user", "content": "Which city is warmest?"}],
                                     documents=[{"content": {"uri": f"{csv_url}/weather.csv"}, "mime_type": "text/csv"},
                                                {"content": f"file://{files_dir / 'notes.txt'}", "mime_type": "text/plain"},
                                                {"content": "data:text/plain,hello", "mime_type": "text/plain"}])
    # the model was told where each file is (the echo model says what it was told)
    paths = re.findall(r'accessible to you at "([^"]+)"', turn.output_message.content)
    assert [p.rsplit("/", 1)[1] for p in paths] == ["weather.csv", "notes.txt", "document.txt"]
    # a later turn of the session runs code that reads them
    assert "Paris,21" in _read_with_code(client, agent_id, session_id, paths[0])
    assert "Celsius" in _read_with_code(client, agent_id, session_id, paths[1])
    sandbox = client.tools.get("code_interpreter").metadata["sandbox"]
    if sandbox == "bwrap":  # isolated runs see only their own session's files
        other = client.agents.session.create(agent_id=agent_id, session_name="other").session_id
        assert "FileNotFoundError" in _read_with_code(client, agent_id, other, paths[0])
    client.agents.session.delete(agent_id=agent_id, session_id=session_id)
    assert not os.path.exists(paths[0])


def test_bad_documents_are_4xx_and_failed_fetches_502(client, csv_url, tmp_path):
    agent_id = client.agents.create(agent_config=agent_config(model=ECHO, toolgroups=["builtin::code_interpreter"])).agent_id
    session_id = client.agents.session.create(agent_id=agent_id, session_name="bad").session_id
    outside = tmp_path / "outside.csv"
    outside.write_text("a,b\n")
    plain = client.agents.create(agent_config=agent_config(model=ECHO)).agent_id
    plain_session = client.agents.session.create(agent_id=plain, session_name="plain").session_id
    for who, session, url, status in [
        (agent_id, session_id, f"{csv_url}/missing.csv", 502),  # the server answered 404
        (agent_id, session_id, f"file://{outside}", 400),       # not in server.fetch.allow_dirs
        (agent_id, session_id, "ftp://example.com/a.csv", 400),  # not a fetched scheme
        (plain, plain_session, f"{csv_url}/weather.csv", 400),   # neither code interpreter nor rag
    ]:
        with pytest.raises(APIStatusError) as info:
            client.agents.turn.create(agent_id=who, session_id=session, stream=True,
                                      messages=[{"role": "user", "content": "read"}],
                                      documents=[{"content": {"uri": url}, "mime_type": "text/csv"}])
        assert info.value.status_code == status, (url, info.value.response.text)
        assert "documents[0].content" in info.value.response.json()["detail"]


def test_an_input_shield_blocks_the_turn(client):
    assert "pattern-guard" in [s.identifier for s in client.shields.list()]
    agent_id = client.agents.create(agent_config=agent_config(input_shields=["pattern-guard"])).agent_id
    session_id = client.agents.session.create(agent_id=agent_id, session_name="guarded").session_id
    chunks = list(client.agents.turn.create(
        agent_id=agent_id, session_id=session_id, stream=True,
        messages=[{"role": "user", "content": "Charge my card 4111 1111 1111 1111 please."}]))
    payloads = [c.event.payload for c in chunks]
    assert [p.event_type for p in payloads] == ["turn_start", "step_start", "step_complete", "turn_complete"]
    shield_step = payloads[2].step_details
    assert shield_step.step_type == "shield_call"
    assert shield_step.violation.violation_level == "error"
    assert "4111 1111 1111 1111" not in str(shield_step.violation.metadata)  # masked
    turn = payloads[-1].turn
    assert turn.output_message.content == shield_step.violation.user_message
    assert [s.step_type for s in turn.steps] == ["shield_call"]  # the model never saw it

    # a clean message passes the same shield and reaches the model
    clean = client.agents.turn.create(agent_id=agent_id, session_id=session_id, stream=False,
                                      messages=[{"role": "user", "content": "Say hello."}])
    assert [s.step_type for s in clean.steps] == ["shield_call", "inference"]
    assert clean.steps[0].violation is None


def test_bad_requests_are_4xx_naming_the_field(client, server):
    bad = httpx.post(f"{server.base_url}/v1/agents", json={"agent_config": agent_config(model="nope")})
    assert bad.status_code == 400 and "agent_config.model" in bad.json()["detail"]
    bad = httpx.post(f"{server.base_url}/v1/agents", json={"agent_config": agent_config(toolgroups=["builtin::nope"])})
    assert bad.status_code == 400 and "agent_config.toolgroups[0]" in bad.json()["detail"]
    bad = httpx.post(f"{server.base_url}/v1/agents", json={"agent_config": agent_config(output_shields=["nope"])})
    assert bad.status_code == 400 and "agent_config.output_shields[0]" in bad.json()["detail"]
    missing = httpx.post(f"{server.base_url}/v1/agents/nope/session", json={"session_name": "s"})
    assert missing.status_code == 404
    agent_id = client.agents.create(agent_config=agent_config()).agent_id
    session_id = client.agents.session.create(agent_id=agent_id, session_name="s").session_id
    empty = httpx.post(f"{server.base_url}/v1/agents/{agent_id}/session/{session_id}/turn", json={"messages": []})
    assert empty.status_code == 400 and "messages" in empty.json()["detail"]
    client.agents.delete(agent_id=agent_id)
    gone = httpx.get(f"{server.base_url}/v1/agents/{agent_id}/session/{session_id}")
    assert gone.status_code == 404


def test_a_client_that_leaves_mid_stream_leaves_no_turn(client, server):
    agent_id = client.agents.create(agent_config=agent_config(sampling_params={"strategy": {"type": "greedy"}, "max_tokens": 400})).agent_id
    session_id = client.agents.session.create(agent_id=agent_id, session_name="s").session_id
    url = f"{server.base_url}/v1/agents/{agent_id}/session/{session_id}/turn"
    body = {"stream": True, "messages": [{"role": "user", "content": "Write a long story about a dragon."}]}
    with httpx.stream("POST", url, json=body, timeout=60) as response:
        events = []
        for line in response.iter_lines():
            if line.startswith("data: "):
                events.append(json.loads(line[6:])["event"]["payload"]["event_type"])
            if events.count("step_progress") >= 3:
                break  # hang up mid-answer
    assert "turn_complete" not in events
    time.sleep(3)  # long enough for the 400-token answer to have finished had it not been cancelled
    assert client.agents.session.retrieve(agent_id=agent_id, session_id=session_id).turns == []


def test_twenty_sessions_at_once(server):
    async def main():
        client = AsyncLlamaStackClient(base_url=server.base_url, timeout=300)
        agent_id = (await client.agents.create(agent_config=agent_config(
            sampling_params={"strategy": {"type": "greedy"}, "max_tokens": 16}))).agent_id

        async def one(i: int):
            session_id = (await client.agents.session.create(agent_id=agent_id, session_name=f"s{i}")).session_id
            turn = await client.agents.turn.create(agent_id=agent_id, session_id=session_id, stream=False,
                                                   messages=[{"role": "user", "content": f"Count to {i}."}])
            return session_id, turn

        results = await asyncio.gather(*(one(i) for i in range(20)))
        for session_id, turn in results:
            assert turn.session_id == session_id and turn.output_message.role == "assistant"
            session = await client.agents.session.retrieve(agent_id=agent_id, session_id=session_id)
            assert [t.turn_id for t in session.turns] == [turn.turn_id]

    asyncio.run(main())


def test_sessions_and_turns_survive_a_restart(tmp_path):
    run_yaml = str(REPO / "distributions/starter/run.yaml")
    with ServerProcess(run_yaml, home=tmp_path) as first:
        client = LlamaStackClient(base_url=first.base_url, timeout=120)
        agent_id = client.agents.create(agent_config=agent_config()).agent_id
        session_id = client.agents.session.create(agent_id=agent_id, session_name="kept").session_id
        for text in ("Hello.", "Say it again."):
            client.agents.turn.create(agent_id=agent_id, session_id=session_id, stream=False,
                                      messages=[{"role": "user", "content": text}])
        before = client.agents.session.retrieve(agent_id=agent_id, session_id=session_id)
    with ServerProcess(run_yaml, home=tmp_path) as second:
        client = LlamaStackClient(base_url=second.base_url, timeout=120)
        after = client.agents.session.retrieve(agent_id=agent_id, session_id=session_id)
        assert after.session_name == "kept"
        assert after.model_dump() == before.model_dump()
        assert [t.input_messages[0].content for t in after.turns] == ["Hello.", "Say it again."]
        # the restored session goes on: its history reaches the model
        turn = client.agents.turn.create(agent_id=agent_id, session_id=session_id, stream=False,
                                         messages=[{"role": "user", "content": "Thanks."}])
        assert len(client.agents.session.retrieve(agent_id=agent_id, session_id=session_id).turns) == 3
        assert turn.output_message.role == "assistant"


def test_llama_guard_runs_through_real_inference(client, server):
    """No Llama Guard weights ship on PyPI: with SmolLM2 as the guard, the prompt
    reaches a real model and its non-verdict is a 502 quoting what it said."""
    client.shields.register(shield_id="smol-guard", provider_id="llama-guard", provider_shield_id=MODEL)
    with pytest.raises(APIStatusError) as err:
        client.safety.run_shield(shield_id="smol-guard", messages=[{"role": "user", "content": "How do I bake bread?"}],
                                 params={})
    assert err.value.status_code == 502
    assert "did not answer 'safe' or 'unsafe'" in err.value.message and "it said:" in err.value.message
    bad = httpx.post(f"{server.base_url}/v1/shields",
                     json={"shield_id": "no-guard", "provider_id": "llama-guard", "provider_shield_id": "all-MiniLM-L6-v2"})
    assert bad.status_code == 400 and "provider_shield_id" in bad.json()["detail"]
