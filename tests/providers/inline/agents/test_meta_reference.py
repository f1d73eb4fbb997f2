"""inline::meta-reference agents with scripted test doubles for the model,
the tool runtime and the shields: the turn loop's mechanics, exactly."""

from __future__ import annotations

import asyncio
import base64
import socket
from pathlib import Path
from typing import Any

import pytest

from providers.inline.agents.meta_reference import MetaReferenceAgentsConfig, create
from providers.utils.web_search import web_search_tool_defs
from stack.apis._content import URL, TextContentItem, TextDelta, ToolCall, ToolCallDelta, ToolCallParseStatus
from stack.apis.agents import AgentConfig, Document
from stack.apis.inference import (
    ChatCompletionResponseEvent,
    ChatCompletionResponseEventType,
    ChatCompletionResponseStreamChunk,
    StopReason,
    SystemMessage,
    ToolResponseMessage,
    UserMessage,
)
from stack.apis.models import Model, ModelType
from stack.apis.safety import RunShieldResponse, SafetyViolation, ViolationLevel
from stack.apis.tool_groups import ListToolsResponse, Tool, ToolDef, ToolGroup, ToolHost, ToolParameter
from stack.apis.tool_runtime import RAGQueryResult, ToolInvocationResult
from stack.errors import BadRequestError, NotFoundError, UpstreamError
from stack.fetcher import FetchConfig, URLFetcher
from stack.registry import ProviderContext, ProviderSpec
from stack.request_context import tool_files_dir

# -- test doubles ------------------------------------------------------------------


def text_reply(text: str) -> dict:
    return {"text": text}


def call_reply(tool_name: str, **arguments: Any) -> dict:
    return {"calls": [ToolCall(call_id=f"call-{tool_name}", tool_name=tool_name, arguments=arguments)]}


class ScriptedInference:
    """Test double of the inference API: answers each chat_completion with the
    next scripted reply and records what it was sent."""

    def __init__(self, *replies: dict) -> None:
        self.replies = list(replies)
        self.requests: list[dict] = []
        self.gate: asyncio.Event | None = None  # set: the stream waits on it mid-way

    async def chat_completion(self, **request):
        self.requests.append(request)
        reply = self.replies.pop(0)
        return self._stream(reply)

    async def _stream(self, reply: dict):
        def chunk(kind, delta, stop=None):
            return ChatCompletionResponseStreamChunk(event=ChatCompletionResponseEvent(event_type=kind, delta=delta, stop_reason=stop))

        yield chunk(ChatCompletionResponseEventType.start, TextDelta(text=""))
        for word in reply.get("text", "").split(" "):
            if word:
                yield chunk(ChatCompletionResponseEventType.progress, TextDelta(text=word + " "))
            if self.gate is not None:
                await self.gate.wait()
        for call in reply.get("calls", []):
            yield chunk(ChatCompletionResponseEventType.progress, ToolCallDelta(tool_call=call, parse_status=ToolCallParseStatus.succeeded))
        stop = StopReason.end_of_message if reply.get("calls") else StopReason.end_of_turn
        yield chunk(ChatCompletionResponseEventType.complete, TextDelta(text=""), stop)


class FakeModels:
    """Test double of the models table."""

    def __init__(self) -> None:
        self.models = {
            "tiny": Model(identifier="tiny", provider_resource_id="tiny", provider_id="p"),
            "minilm": Model(identifier="minilm", provider_resource_id="minilm", provider_id="p",
                            model_type=ModelType.embedding, metadata={"embedding_dimension": 384}),
        }

    async def get(self, model_id: str) -> Model:
        if model_id not in self.models:
            raise NotFoundError("model", model_id, self.models)
        return self.models[model_id]

    async def list(self) -> list[Model]:
        return list(self.models.values())


class FakeToolGroups:
    """Test double of the tool groups table: builtin::calc with an `add` tool, builtin::rag with knowledge_search,
    builtin::websearch with the tools the web search providers list."""

    groups = {
        "builtin::calc": (None, [("add", [ToolParameter(name="a", parameter_type="integer", description="a"),
                                          ToolParameter(name="b", parameter_type="integer", description="b")])]),
        "builtin::code_interpreter": (None, [("code_interpreter", [ToolParameter(name="code", parameter_type="string", description="c")])]),
        "builtin::rag": ({"vector_db_ids": ["docs"]}, [("knowledge_search", [ToolParameter(name="query", parameter_type="string", description="q")])]),
        "builtin::websearch": (None, web_search_tool_defs()),
    }

    async def get_tool_group(self, toolgroup_id: str) -> ToolGroup:
        if toolgroup_id not in self.groups:
            raise NotFoundError("tool_group", toolgroup_id, self.groups)
        return ToolGroup(identifier=toolgroup_id, provider_resource_id=toolgroup_id, provider_id="p", args=self.groups[toolgroup_id][0])

    async def list_tools(self, toolgroup_id: str) -> ListToolsResponse:
        defs = [t if isinstance(t, ToolDef) else ToolDef(name=t[0], description=f"the {t[0]} tool", parameters=t[1])
                for t in self.groups[toolgroup_id][1]]
        return ListToolsResponse(data=[
            Tool(identifier=t.name, provider_resource_id=t.name, provider_id="p", toolgroup_id=toolgroup_id,
                 tool_host=ToolHost.distribution, description=t.description, parameters=t.parameters, metadata=t.metadata)
            for t in defs
        ])


class RecordingToolRuntime:
    """Test double of the tool runtime: `add` adds, knowledge_search echoes its kwargs."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict]] = []
        self.inserted: list[dict] = []
        self.queries: list[dict] = []

    async def invoke_tool(self, tool_name: str, kwargs: dict) -> ToolInvocationResult:
        self.calls.append((tool_name, kwargs))
        if tool_name == "add":
            return ToolInvocationResult(content=str(kwargs["a"] + kwargs["b"]))
        if tool_name == "code_interpreter":  # what the sandbox would be given to read
            return ToolInvocationResult(content=f"files: {tool_files_dir()}")
        return ToolInvocationResult(content=f"searched {kwargs}")

    async def rag_tool_query(self, content, vector_db_ids, query_config=None) -> RAGQueryResult:
        self.queries.append({"content": content, "vector_db_ids": vector_db_ids, "query_config": query_config})
        if "missing" in vector_db_ids:
            raise NotFoundError("vector_db", "missing", ["docs"])
        return RAGQueryResult(content=[TextContentItem(text=f"found in {vector_db_ids}: octopi have three hearts")])

    async def rag_tool_insert(self, documents, vector_db_id, chunk_size_in_tokens) -> None:
        self.inserted.append({"documents": documents, "vector_db_id": vector_db_id})


class FakeVectorDBs:
    """Test double of the vector DBs table."""

    def __init__(self) -> None:
        self.registered: dict[str, dict] = {}

    async def register_vector_db(self, vector_db_id: str, **kwargs) -> None:
        self.registered[vector_db_id] = kwargs

    async def unregister_vector_db(self, vector_db_id: str) -> None:
        del self.registered[vector_db_id]


class KeywordShield:
    """Test double of the safety API: flags messages containing its shield's keyword."""

    keywords = {"no-bombs": ("bomb", ViolationLevel.error), "note-cats": ("cat", ViolationLevel.warn)}

    async def run_shield(self, shield_id: str, messages: list, params: dict) -> RunShieldResponse:
        keyword, level = self.keywords[shield_id]
        for message in messages:
            if keyword in str(message.content):
                return RunShieldResponse(violation=SafetyViolation(violation_level=level, user_message=f"blocked: {keyword}"))
        return RunShieldResponse()


class FakeShields:
    async def get(self, shield_id: str):
        if shield_id not in KeywordShield.keywords:
            raise NotFoundError("shield", shield_id, KeywordShield.keywords)
        return shield_id


# -- fixtures ----------------------------------------------------------------------


class Harness:
    def __init__(self, tmp_path: Path, config: MetaReferenceAgentsConfig | None = None) -> None:
        self.tmp_path = tmp_path
        self.config = config or MetaReferenceAgentsConfig()
        self.inference = ScriptedInference()
        self.tool_runtime = RecordingToolRuntime()
        self.vector_dbs = FakeVectorDBs()
        self.agents = None

    async def start(self):
        spec = ProviderSpec(api="agents", provider_type="inline::meta-reference", config=MetaReferenceAgentsConfig, factory=create)
        deps = {"inference": self.inference, "models": FakeModels(), "safety": KeywordShield(), "shields": FakeShields(),
                "tool_runtime": self.tool_runtime, "tool_groups": FakeToolGroups(), "vector_io": object(), "vector_dbs": self.vector_dbs}
        context = ProviderContext(provider_id="agents", spec=spec, image_name="t", data_dir=self.tmp_path, deps=deps)
        self.agents = await create(self.config, context)
        return self.agents

    async def agent(self, **overrides) -> tuple[str, str]:
        config = AgentConfig(model="tiny", instructions="Be brief.", enable_session_persistence=True, **overrides)
        agent_id = (await self.agents.create_agent(config)).agent_id
        session_id = (await self.agents.create_agent_session(agent_id, "s")).session_id
        return agent_id, session_id

    async def turn(self, agent_id, session_id, *messages, stream=False, **kwargs):
        messages = [UserMessage(content=m) if isinstance(m, str) else m for m in messages]
        return await self.agents.create_agent_turn(agent_id, session_id, messages, stream=stream, **kwargs)


@pytest.fixture
async def harness(tmp_path):
    h = Harness(tmp_path)
    await h.start()
    yield h
    await h.agents.shutdown()


# -- tests -------------------------------------------------------------------------


async def test_plain_turn_answers_and_is_stored(harness):
    agent_id, session_id = await harness.agent()
    harness.inference.replies = [text_reply("Hello there")]
    turn = await harness.turn(agent_id, session_id, "Hi")
    assert turn.output_message.content == "Hello there "
    assert [s.step_type for s in turn.steps] == ["inference"]
    sent = harness.inference.requests[0]
    assert isinstance(sent["messages"][0], SystemMessage) and sent["messages"][0].content == "Be brief."
    assert "tools" not in sent
    stored = await harness.agents.get_agents_turn(agent_id, session_id, turn.turn_id)
    assert stored == turn
    step = await harness.agents.get_agents_step(agent_id, session_id, turn.turn_id, turn.steps[0].step_id)
    assert step.step.model_response.content == "Hello there "


async def test_stream_emits_events_in_spec_order(harness):
    agent_id, session_id = await harness.agent(toolgroups=["builtin::calc"])
    harness.inference.replies = [call_reply("add", a=2, b=3), text_reply("It is 5")]
    events = [c.event.payload async for c in await harness.turn(agent_id, session_id, "2+3?", stream=True)]
    kinds = [(e.event_type, getattr(e, "step_type", None)) for e in events]
    assert kinds[0] == ("turn_start", None)
    assert kinds[-1] == ("turn_complete", None)
    compact = [k for i, k in enumerate(kinds) if i == 0 or k != kinds[i - 1]]
    assert compact == [
        ("turn_start", None),
        ("step_start", "inference"), ("step_progress", "inference"), ("step_complete", "inference"),
        ("step_start", "tool_execution"), ("step_complete", "tool_execution"),
        ("step_start", "inference"), ("step_progress", "inference"), ("step_complete", "inference"),
        ("turn_complete", None),
    ]
    # each step's start, progress and complete share its id
    starts = [e.step_id for e in events if e.event_type == "step_start"]
    completes = [e.step_id for e in events if e.event_type == "step_complete"]
    assert starts == completes and len(set(starts)) == 3
    turn = events[-1].turn
    tool_step = turn.steps[1]
    assert tool_step.tool_calls[0].arguments == {"a": 2, "b": 3}
    assert tool_step.tool_responses[0].content == "5"
    assert all(s.started_at <= s.completed_at for s in turn.steps)
    # the tool's answer went back to the model, under the call's id
    second = harness.inference.requests[1]["messages"]
    assert isinstance(second[-1], ToolResponseMessage) and second[-1].content == "5" and second[-1].call_id == "call-add"
    assert turn.output_message.content == "It is 5 " and turn.output_message.tool_calls == []


async def test_required_tool_choice_forces_only_the_first_round(harness):
    agent_id, session_id = await harness.agent(toolgroups=["builtin::calc"], tool_choice="required")
    harness.inference.replies = [call_reply("add", a=1, b=1), text_reply("2")]
    await harness.turn(agent_id, session_id, "1+1?")
    assert [r["tool_choice"].value for r in harness.inference.requests] == ["required", "auto"]


@pytest.mark.parametrize("group", ["builtin::websearch", "builtin::websearch/web_search"])
async def test_web_search_is_offered_once_and_answers_the_builtin_brave_search(harness, group):
    agent_id, session_id = await harness.agent(toolgroups=[group])
    # a Llama model calls its built-in tool by llama-stack 0.1.0's name
    harness.inference.replies = [call_reply("brave_search", query="paris weather"), text_reply("Sunny")]
    turn = await harness.turn(agent_id, session_id, "Weather in Paris?")
    assert [t.tool_name for t in harness.inference.requests[0]["tools"]] == ["web_search"]
    assert harness.tool_runtime.calls == [("brave_search", {"query": "paris weather"})]
    assert turn.steps[1].tool_responses[0].content == "searched {'query': 'paris weather'}"
    assert turn.output_message.content == "Sunny "


async def test_client_tool_call_ends_the_turn_and_next_turn_continues(harness):
    weather = ToolDef(name="get_weather", description="weather of a city",
                      parameters=[ToolParameter(name="city", parameter_type="string", description="city")])
    agent_id, session_id = await harness.agent(client_tools=[weather])
    harness.inference.replies = [call_reply("get_weather", city="Paris")]
    first = await harness.turn(agent_id, session_id, "Weather in Paris?")
    assert first.output_message.tool_calls[0].tool_name == "get_weather"
    assert [s.step_type for s in first.steps] == ["inference"]
    assert harness.tool_runtime.calls == []  # the server never runs a client tool

    harness.inference.replies = [text_reply("Sunny, 21 C")]
    answer = ToolResponseMessage(call_id="call-get_weather", tool_name="get_weather", content='{"temp_c": 21}')
    second = await harness.turn(agent_id, session_id, answer)
    assert second.output_message.content == "Sunny, 21 C "
    sent = harness.inference.requests[1]["messages"]
    # history: system, user, assistant's call, then the client's answer
    assert [m.role for m in sent] == ["system", "user", "assistant", "tool"]
    assert sent[2].tool_calls[0].call_id == "call-get_weather"
    assert harness.inference.requests[1]["tool_choice"].value == "auto"
    session = await harness.agents.get_agents_session(session_id, agent_id)
    assert [t.turn_id for t in session.turns] == [first.turn_id, second.turn_id]


async def test_max_infer_iters_caps_the_loop(harness):
    agent_id, session_id = await harness.agent(toolgroups=["builtin::calc"], max_infer_iters=2)
    harness.inference.replies = [call_reply("add", a=1, b=2), call_reply("add", a=3, b=4)]
    turn = await harness.turn(agent_id, session_id, "loop")
    assert len(harness.inference.requests) == 2
    assert [s.step_type for s in turn.steps] == ["inference", "tool_execution"] * 2
    assert turn.output_message.stop_reason == "out_of_tokens" and turn.output_message.tool_calls == []


async def test_unknown_tool_and_agent_args(harness):
    agent_id, session_id = await harness.agent(toolgroups=[{"name": "builtin::rag", "args": {"vector_db_ids": ["mine"]}}])
    harness.inference.replies = [
        {"calls": [ToolCall(call_id="c1", tool_name="knowledge_search", arguments={"query": "q", "vector_db_ids": ["hacked"]}),
                   ToolCall(call_id="c2", tool_name="rm_rf", arguments={})]},
        text_reply("done"),
    ]
    turn = await harness.turn(agent_id, session_id, "search")
    # the agent's vector_db_ids win over the model's; the group's registered args are the base
    assert harness.tool_runtime.calls == [("knowledge_search", {"vector_db_ids": ["mine"], "query": "q"})]
    assert turn.steps[0].tool_calls[0].tool_name == "query_from_memory"  # builtin::rag retrieves first
    responses = turn.steps[2].tool_responses
    assert "unknown tool 'rm_rf'" in responses[1].content and "knowledge_search" in responses[1].content


@pytest.mark.parametrize("group", ["builtin::rag", "builtin::memory", "builtin::rag/knowledge_search"])
async def test_rag_retrieves_before_every_turn_without_a_tool_call(harness, group):
    agent_id, session_id = await harness.agent(toolgroups=[{"name": group, "args": {"vector_db_ids": ["facts"]}}])
    harness.inference.replies = [text_reply("Three."), text_reply("Blue.")]
    turn = await harness.turn(agent_id, session_id, "How many hearts has an octopus?")
    assert [s.step_type for s in turn.steps] == ["tool_execution", "inference"]
    (call,), (response,) = turn.steps[0].tool_calls, turn.steps[0].tool_responses
    assert call.tool_name == response.tool_name == "query_from_memory" and call.call_id == response.call_id
    assert harness.tool_runtime.queries[0]["content"] == "How many hearts has an octopus?"
    assert harness.tool_runtime.queries[0]["vector_db_ids"] == ["facts"]
    # what was found goes to the model with the user's message, in this turn and in later ones
    assert "octopi have three hearts" in harness.inference.requests[0]["messages"][-1].context
    await harness.turn(agent_id, session_id, "Blood colour?")
    history = harness.inference.requests[1]["messages"]
    assert "octopi have three hearts" in history[1].context and history[-1].content == "Blood colour?"
    assert harness.tool_runtime.calls == []  # the model never called knowledge_search
    assert len(harness.tool_runtime.queries) == 2


async def test_a_failed_retrieval_is_recorded_and_the_turn_goes_on(harness):
    agent_id, session_id = await harness.agent(toolgroups=[{"name": "builtin::rag", "args": {"vector_db_ids": ["missing"]}}])
    harness.inference.replies = [text_reply("Sorry.")]
    turn = await harness.turn(agent_id, session_id, "Anything?")
    assert turn.steps[0].tool_responses[0].content.startswith("error: vector_db 'missing' not found")
    assert harness.inference.requests[0]["messages"][-1].context is None
    assert turn.output_message.content.strip() == "Sorry."


@pytest.mark.parametrize(
    ("args", "field"),
    [
        ({"vector_db_ids": 5}, "agent_config.toolgroups[0].args.vector_db_ids"),
        ({"vector_db_ids": ["ok", ""]}, "agent_config.toolgroups[0].args.vector_db_ids"),
        ({"vector_db_ids": ["ok"], "query_config": {"query_generator_config": {"type": "default"}, "max_chunks": "many"}}, "agent_config.toolgroups[0].args.query_config.max_chunks"),
    ],
)
async def test_bad_rag_args_are_a_400_naming_the_field(harness, args, field):
    with pytest.raises(BadRequestError) as err:
        await harness.agent(toolgroups=[{"name": "builtin::rag", "args": args}])
    assert err.value.field == field


async def test_input_shield_blocks_the_turn(harness):
    agent_id, session_id = await harness.agent(input_shields=["no-bombs"])
    turn = await harness.turn(agent_id, session_id, "how to build a bomb")
    assert harness.inference.requests == []
    assert [s.step_type for s in turn.steps] == ["shield_call"]
    assert turn.steps[0].violation.violation_level == "error"
    assert turn.output_message.content == "blocked: bomb"


async def test_shields_on_a_stack_without_safety_are_a_400(harness):
    agent_id, session_id = await harness.agent(input_shields=["no-bombs"])
    harness.agents.deps.safety = None  # as after a restart with the safety API removed from the run config
    with pytest.raises(BadRequestError) as err:
        await harness.turn(agent_id, session_id, "hello")
    assert err.value.field == "agent_config.input_shields"


async def test_warning_shield_is_recorded_but_does_not_block(harness):
    agent_id, session_id = await harness.agent(input_shields=["note-cats"], output_shields=["no-bombs"])
    harness.inference.replies = [text_reply("a cat bomb")]
    turn = await harness.turn(agent_id, session_id, "tell me about a cat")
    assert [s.step_type for s in turn.steps] == ["shield_call", "inference", "shield_call"]
    assert turn.steps[0].violation.violation_level == "warn"
    # the output shield replaced the model's answer
    assert turn.output_message.content == "blocked: bomb"


async def test_inline_documents_go_with_the_message(harness):
    agent_id, session_id = await harness.agent()
    harness.inference.replies = [text_reply("Bluefin"), text_reply("Tuesday")]
    doc = Document(content="The codename is Bluefin.", mime_type="text/plain")
    turn = await harness.turn(agent_id, session_id, "Codename?", documents=[doc])
    assert turn.steps[0].step_type == "memory_retrieval" and "Bluefin" in turn.steps[0].inserted_context
    assert "Bluefin" in harness.inference.requests[0]["messages"][-1].context
    # later turns still see the document
    await harness.turn(agent_id, session_id, "When?")
    history = harness.inference.requests[1]["messages"]
    assert "Bluefin" in history[1].context


async def test_inline_documents_keep_the_context_the_client_sent(harness):
    agent_id, session_id = await harness.agent()
    harness.inference.replies = [text_reply("ok")]
    doc = Document(content="The codename is Bluefin.", mime_type="text/plain")
    await harness.turn(agent_id, session_id, UserMessage(content="Codename?", context="Answer in French."), documents=[doc])
    context = harness.inference.requests[0]["messages"][-1].context
    assert context.startswith("Answer in French.") and "Bluefin" in context


async def test_documents_with_rag_go_to_a_session_vector_db(harness):
    agent_id, session_id = await harness.agent(toolgroups=["builtin::rag"])
    harness.inference.replies = [call_reply("knowledge_search", query="codename"), text_reply("Bluefin")]
    await harness.turn(agent_id, session_id, "Codename?", documents=[Document(content="The codename is Bluefin.", mime_type="text/plain")])
    (db_id,) = harness.vector_dbs.registered
    assert harness.vector_dbs.registered[db_id]["embedding_model"] == "minilm"
    assert harness.tool_runtime.inserted[0]["vector_db_id"] == db_id
    assert harness.tool_runtime.calls[0][1]["vector_db_ids"] == ["docs", db_id]
    await harness.agents.delete_agents_session(session_id, agent_id)
    assert harness.vector_dbs.registered == {}


async def test_url_document_without_rag_is_a_400(harness):
    agent_id, session_id = await harness.agent()
    with pytest.raises(BadRequestError) as err:
        await harness.turn(agent_id, session_id, "read", documents=[Document(content="https://example.com/a.pdf", mime_type="application/pdf")])
    assert err.value.field == "documents[0].content"


CSV = "data:text/csv;base64," + base64.b64encode(b"city,temp\nParis,21\n").decode()


async def test_url_documents_are_downloaded_for_the_code_interpreter(harness, tmp_path):
    agent_id, session_id = await harness.agent(toolgroups=["builtin::code_interpreter"])
    harness.inference.replies = [call_reply("code_interpreter", code="read it"), text_reply("21 C"), text_reply("ok")]
    turn = await harness.turn(agent_id, session_id, "Temperature in Paris?", documents=[
        Document(content=URL(uri=CSV), mime_type="text/csv"),
        Document(content="Temperatures are in Celsius.", mime_type="text/plain")])
    folder = tmp_path / "agent_files" / session_id
    assert (folder / "document.csv").read_text() == "city,temp\nParis,21\n"
    context = harness.inference.requests[0]["messages"][-1].context
    assert f'accessible to you at "{folder / "document.csv"}"' in context and "Celsius" in context
    # the code interpreter runs with the session's folder to read
    assert turn.steps[2].tool_responses[0].content == f"files: {folder}"
    # a second document of the same name does not overwrite the first; the next turn still sees both
    await harness.turn(agent_id, session_id, "Again", documents=[Document(content=CSV, mime_type="text/csv")])
    assert len(list(folder.iterdir())) == 2
    await harness.agents.delete_agents_session(session_id, agent_id)
    assert not folder.exists()


async def test_document_fetch_refusals_and_failures(harness, tmp_path):
    agent_id, session_id = await harness.agent(toolgroups=["builtin::code_interpreter"])
    secret = tmp_path / "secret.txt"
    secret.write_text("x")
    with pytest.raises(BadRequestError) as err:  # outside server.fetch.allow_dirs
        await harness.turn(agent_id, session_id, "read", documents=[Document(content=f"file://{secret}", mime_type="text/plain")])
    assert err.value.field == "documents[0].content" and "allow_dirs" in err.value.message
    harness.agents.files.max_bytes = 4
    with pytest.raises(BadRequestError) as err:
        await harness.turn(agent_id, session_id, "read", documents=[Document(content="data:,12345", mime_type="text/plain")])
    assert err.value.field == "documents[0].content" and "larger than 4 bytes" in err.value.message
    with socket.socket() as s:  # a loopback port nobody listens on, loopback allowed
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    harness.agents.files.fetcher = URLFetcher(FetchConfig(allow_networks=["127.0.0.1/32"]))
    with pytest.raises(UpstreamError) as err:
        await harness.turn(agent_id, session_id, "read", documents=[Document(content=f"http://127.0.0.1:{port}/a.csv", mime_type="text/csv")])
    assert "documents[0].content" in err.value.message
    assert harness.inference.requests == []


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"model": "nope"}, "agent_config.model"),
        ({"model": "minilm"}, "agent_config.model"),
        ({"max_infer_iters": 0}, "agent_config.max_infer_iters"),
        ({"input_shields": ["missing"]}, "agent_config.input_shields[0]"),
        ({"toolgroups": ["builtin::calc", "builtin::nope"]}, "agent_config.toolgroups[1]"),
        ({"toolgroups": ["builtin::calc/sub"]}, "agent_config.toolgroups[0]"),
        ({"toolgroups": ["builtin::calc"], "client_tools": [ToolDef(name="add")]}, "agent_config.client_tools[0].name"),
    ],
)
async def test_bad_agent_config_is_a_400_naming_the_field(harness, overrides, field):
    config = {"model": "tiny", "instructions": "", "enable_session_persistence": True, **overrides}
    with pytest.raises(BadRequestError) as err:
        await harness.agents.create_agent(AgentConfig(**config))
    assert err.value.field == field


async def test_unknown_ids_are_404s_and_delete_removes_everything(harness):
    agent_id, session_id = await harness.agent()
    harness.inference.replies = [text_reply("hi")]
    turn = await harness.turn(agent_id, session_id, "hi")
    with pytest.raises(NotFoundError):
        await harness.agents.create_agent_session("no-agent", "s")
    with pytest.raises(NotFoundError) as err:
        await harness.agents.get_agents_session("no-session", agent_id)
    assert err.value.message == f"agent {agent_id!r} has no session 'no-session'; known: {session_id!r}"
    with pytest.raises(NotFoundError) as err:
        await harness.agents.get_agents_step(agent_id, session_id, turn.turn_id, "no-step")
    assert err.value.message.startswith(f"turn {turn.turn_id!r} has no step 'no-step'; known: ")
    assert (err.value.kind, err.value.identifier) == ("step", "no-step")
    with pytest.raises(BadRequestError):
        await harness.turn(agent_id, session_id)
    await harness.agents.delete_agent(agent_id)
    with pytest.raises(NotFoundError):
        await harness.agents.get_agents_turn(agent_id, session_id, turn.turn_id)
    assert await harness.agents.store.list_turns(session_id) == []


@pytest.fixture(params=["sqlite", "postgres"])
async def stored_harness(request, tmp_path):
    """A harness on each store backend."""
    config = None
    if request.param == "postgres":
        config = MetaReferenceAgentsConfig(persistence_store=request.getfixturevalue("postgres_config"))
    h = Harness(tmp_path, config)
    await h.start()
    yield h
    await h.agents.shutdown()


async def test_turns_survive_a_restart(stored_harness):
    harness = stored_harness
    agent_id, session_id = await harness.agent()
    harness.inference.replies = [text_reply("one"), text_reply("two")]
    first = await harness.turn(agent_id, session_id, "1")
    second = await harness.turn(agent_id, session_id, "2")
    await harness.agents.shutdown()
    again = await harness.start()
    session = await again.get_agents_session(session_id, agent_id)
    assert session.turns == [first, second]
    only = await again.get_agents_session(session_id, agent_id, turn_ids=[second.turn_id])
    assert only.turns == [second]


async def test_a_cancelled_stream_leaves_no_half_written_turn(harness):
    agent_id, session_id = await harness.agent()
    harness.inference.replies = [text_reply("one two three four")]
    harness.inference.gate = asyncio.Event()
    stream = await harness.turn(agent_id, session_id, "count", stream=True)
    seen = [await anext(stream) for _ in range(3)]  # turn_start, step_start, first word
    assert seen[-1].event.payload.event_type == "step_progress"
    await stream.aclose()  # what the server does when the client goes away
    assert (await harness.agents.get_agents_session(session_id, agent_id)).turns == []
    # the session is usable again: its lock was released
    harness.inference.gate = None
    harness.inference.replies = [text_reply("ok")]
    turn = await harness.turn(agent_id, session_id, "again")
    assert turn.output_message.content == "ok "


async def test_turns_of_one_session_run_one_at_a_time(harness):
    agent_id, session_id = await harness.agent()
    harness.inference.replies = [text_reply("first"), text_reply("second")]
    harness.inference.gate = asyncio.Event()
    a = asyncio.create_task(harness.turn(agent_id, session_id, "a"))
    b = asyncio.create_task(harness.turn(agent_id, session_id, "b"))
    await asyncio.sleep(0.05)
    assert len(harness.inference.requests) == 1  # b waits for a
    harness.inference.gate.set()
    first, second = await asyncio.gather(a, b)
    # b saw a's turn in its history
    assert [m.role for m in harness.inference.requests[1]["messages"]] == ["system", "user", "assistant", "user"]
