"""Agent wire types: configs, turns, steps and the turn event stream parse as the spec says."""

from datetime import datetime, timezone

import pytest
from pydantic import TypeAdapter, ValidationError

from stack.apis._content import URL, TextContentItem, TextDelta, ToolCallDelta
from stack.apis.agents import (
    AgentConfig,
    AgentStepResponse,
    AgentToolGroupWithArgs,
    AgentTurnResponseStepCompletePayload,
    AgentTurnResponseStepProgressPayload,
    AgentTurnResponseStepStartPayload,
    AgentTurnResponseStreamChunk,
    AgentTurnResponseTurnCompletePayload,
    AgentTurnResponseTurnStartPayload,
    Document,
    InferenceStep,
    MemoryRetrievalStep,
    Session,
    ShieldCallStep,
    Step,
    StepType,
    ToolExecutionStep,
    Turn,
    TurnInputMessage,
)
from stack.apis.inference import BuiltinTool, GreedySamplingStrategy, ToolChoice, UserMessage
from stack.apis.safety import ViolationLevel
from stack.apis.tool_groups import ToolDef

T0 = "2025-01-20T10:00:00Z"
T1 = "2025-01-20T10:00:02Z"

ASSISTANT = {
    "role": "assistant",
    "content": "It is sunny in Paris.",
    "stop_reason": "end_of_turn",
    "tool_calls": [],
}

STEPS = {
    "inference": {
        "turn_id": "t1",
        "step_id": "s1",
        "started_at": T0,
        "completed_at": T1,
        "step_type": "inference",
        "model_response": ASSISTANT,
    },
    "tool_execution": {
        "turn_id": "t1",
        "step_id": "s2",
        "step_type": "tool_execution",
        "tool_calls": [
            {"call_id": "c1", "tool_name": "brave_search", "arguments": {"query": "paris weather"}}
        ],
        "tool_responses": [
            {"call_id": "c1", "tool_name": "brave_search", "content": [{"type": "text", "text": "sunny"}]}
        ],
    },
    "shield_call": {
        "turn_id": "t1",
        "step_id": "s3",
        "step_type": "shield_call",
        "violation": {
            "violation_level": "error",
            "user_message": "I can't help with that.",
            "metadata": {"violation_type": "S1"},
        },
    },
    "memory_retrieval": {
        "turn_id": "t1",
        "step_id": "s4",
        "step_type": "memory_retrieval",
        "vector_db_ids": "docs",
        "inserted_context": [{"type": "text", "text": "Paris is the capital of France."}],
    },
}

STEP_CLASSES = {
    "inference": InferenceStep,
    "tool_execution": ToolExecutionStep,
    "shield_call": ShieldCallStep,
    "memory_retrieval": MemoryRetrievalStep,
}

TURN = {
    "turn_id": "t1",
    "session_id": "sess1",
    "input_messages": [
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "tool", "call_id": "c0", "tool_name": "get_weather", "content": "sunny"},
    ],
    "steps": list(STEPS.values()),
    "output_message": ASSISTANT,
    "output_attachments": [
        {"content": "a,b\n1,2\n", "mime_type": "text/csv"},
        {"content": {"uri": "https://example.com/report.pdf"}, "mime_type": "application/pdf"},
    ],
    "started_at": T0,
    "completed_at": T1,
}


def dump(model):
    return model.model_dump(mode="json", exclude_none=True)


@pytest.mark.parametrize("step_type", list(STEPS))
def test_every_step_type_parses_into_its_class_and_round_trips(step_type):
    step = TypeAdapter(Step).validate_python(STEPS[step_type])
    assert type(step) is STEP_CLASSES[step_type]
    dumped = TypeAdapter(Step).dump_python(step, mode="json", exclude_none=True)
    assert TypeAdapter(Step).validate_python(dumped) == step
    # datetimes come back as ISO strings that parse to the same instant
    if "started_at" in STEPS[step_type]:
        assert step.started_at == datetime(2025, 1, 20, 10, 0, tzinfo=timezone.utc)


def test_step_details_keep_their_contents():
    tool = TypeAdapter(Step).validate_python(STEPS["tool_execution"])
    assert tool.tool_calls[0].tool_name is BuiltinTool.brave_search
    assert isinstance(tool.tool_responses[0].content[0], TextContentItem)
    shield = TypeAdapter(Step).validate_python(STEPS["shield_call"])
    assert shield.violation.violation_level is ViolationLevel.error
    assert ShieldCallStep(turn_id="t", step_id="s").violation is None  # the shield passed


def test_unknown_step_type_is_rejected():
    with pytest.raises(ValidationError) as err:
        TypeAdapter(Step).validate_python({**STEPS["inference"], "step_type": "planning"})
    assert "step_type" in str(err.value)


def test_step_response_wraps_a_step():
    resp = AgentStepResponse.model_validate({"step": STEPS["memory_retrieval"]})
    assert isinstance(resp.step, MemoryRetrievalStep)
    assert resp.step.vector_db_ids == "docs"


def test_turn_round_trips_with_every_step_and_attachment_kind():
    turn = Turn.model_validate(TURN)
    assert [type(s) for s in turn.steps] == list(STEP_CLASSES.values())
    assert isinstance(turn.output_attachments[1].content, URL)
    assert Turn.model_validate(dump(turn)) == turn


def test_turn_rejects_assistant_messages_as_input():
    bad = {**TURN, "input_messages": [ASSISTANT]}
    with pytest.raises(ValidationError):
        Turn.model_validate(bad)


def test_turn_without_attachments_reads_as_empty():
    turn = Turn.model_validate({k: v for k, v in TURN.items() if k != "output_attachments"})
    assert turn.output_attachments == []


def test_session_holds_its_turns():
    session = Session.model_validate(
        {"session_id": "sess1", "session_name": "chat", "turns": [TURN], "started_at": T0}
    )
    assert session.turns[0].turn_id == "t1"
    assert Session.model_validate(dump(session)) == session


STREAM_EVENTS = [
    ({"event_type": "turn_start", "turn_id": "t1"}, AgentTurnResponseTurnStartPayload),
    (
        {"event_type": "step_start", "step_type": "inference", "step_id": "s1", "metadata": {"k": 1}},
        AgentTurnResponseStepStartPayload,
    ),
    (
        {
            "event_type": "step_progress",
            "step_type": "inference",
            "step_id": "s1",
            "delta": {"type": "text", "text": "It is"},
        },
        AgentTurnResponseStepProgressPayload,
    ),
    (
        {
            "event_type": "step_progress",
            "step_type": "inference",
            "step_id": "s1",
            "delta": {
                "type": "tool_call",
                "tool_call": {"call_id": "c1", "tool_name": "get_weather", "arguments": {}},
                "parse_status": "succeeded",
            },
        },
        AgentTurnResponseStepProgressPayload,
    ),
    (
        {
            "event_type": "step_complete",
            "step_type": "tool_execution",
            "step_id": "s2",
            "step_details": STEPS["tool_execution"],
        },
        AgentTurnResponseStepCompletePayload,
    ),
    ({"event_type": "turn_complete", "turn": TURN}, AgentTurnResponseTurnCompletePayload),
]


@pytest.mark.parametrize("payload, cls", STREAM_EVENTS, ids=lambda v: getattr(v, "__name__", ""))
def test_every_stream_event_type_parses_and_round_trips(payload, cls):
    chunk = AgentTurnResponseStreamChunk.model_validate({"event": {"payload": payload}})
    assert type(chunk.event.payload) is cls
    again = AgentTurnResponseStreamChunk.model_validate_json(chunk.model_dump_json())
    assert again == chunk


def test_stream_deltas_and_step_details_are_typed():
    text = AgentTurnResponseStreamChunk.model_validate({"event": {"payload": STREAM_EVENTS[2][0]}})
    assert isinstance(text.event.payload.delta, TextDelta)
    assert text.event.payload.step_type is StepType.inference
    call = AgentTurnResponseStreamChunk.model_validate({"event": {"payload": STREAM_EVENTS[3][0]}})
    assert isinstance(call.event.payload.delta, ToolCallDelta)
    done = AgentTurnResponseStreamChunk.model_validate({"event": {"payload": STREAM_EVENTS[4][0]}})
    assert isinstance(done.event.payload.step_details, ToolExecutionStep)


@pytest.mark.parametrize(
    "payload",
    [
        {"event_type": "turn_paused", "turn_id": "t1"},
        {"event_type": "step_start", "step_type": "planning", "step_id": "s1"},
        {"turn_id": "t1"},
    ],
)
def test_bad_stream_events_are_rejected(payload):
    with pytest.raises(ValidationError):
        AgentTurnResponseStreamChunk.model_validate({"event": {"payload": payload}})


def test_minimal_agent_config_gets_spec_defaults():
    config = AgentConfig.model_validate(
        {"model": "m", "instructions": "Be brief.", "enable_session_persistence": False}
    )
    assert config.max_infer_iters == 10
    assert config.tool_choice is ToolChoice.auto
    assert config.sampling_params.strategy == GreedySamplingStrategy()
    assert config.toolgroups == [] and config.input_shields == [] and config.client_tools == []


def test_agent_config_requires_model_instructions_and_persistence_flag():
    for missing in ("model", "instructions", "enable_session_persistence"):
        data = {"model": "m", "instructions": "i", "enable_session_persistence": True}
        del data[missing]
        with pytest.raises(ValidationError):
            AgentConfig.model_validate(data)


def test_full_agent_config_round_trips():
    data = {
        "sampling_params": {"strategy": {"type": "top_p", "temperature": 0.7, "top_p": 0.9}, "max_tokens": 512, "repetition_penalty": 1.0},
        "input_shields": ["llama-guard"],
        "output_shields": ["llama-guard"],
        "toolgroups": ["builtin::websearch", {"name": "builtin::rag", "args": {"vector_db_ids": ["docs"]}}],
        "client_tools": [
            {
                "name": "get_weather",
                "description": "Weather for a city",
                "parameters": [{"name": "city", "parameter_type": "string", "description": "City", "required": True}],
            }
        ],
        "tool_choice": "required",
        "tool_prompt_format": "python_list",
        "max_infer_iters": 5,
        "model": "meta-llama/Llama-3.2-3B-Instruct",
        "instructions": "You are a helpful assistant.",
        "enable_session_persistence": True,
        "response_format": {"type": "json_schema", "json_schema": {"type": "object"}},
    }  # fmt: skip
    config = AgentConfig.model_validate(data)
    assert config.toolgroups[0] == "builtin::websearch"
    assert config.toolgroups[1] == AgentToolGroupWithArgs(name="builtin::rag", args={"vector_db_ids": ["docs"]})
    assert isinstance(config.client_tools[0], ToolDef)
    assert AgentConfig.model_validate(dump(config)) == config


def test_turn_input_is_user_or_tool_message_only():
    ta = TypeAdapter(list[TurnInputMessage])
    parsed = ta.validate_python([{"role": "user", "content": "hi"}])
    assert isinstance(parsed[0], UserMessage)
    for role in ("system", "assistant"):
        with pytest.raises(ValidationError):
            ta.validate_python([{"role": role, "content": "hi", "stop_reason": "end_of_turn"}])


@pytest.mark.parametrize(
    "content",
    [
        "inline text",
        {"type": "text", "text": "an item"},
        [{"type": "text", "text": "a"}, {"type": "image", "image": {"data": "iVBORw0KGgo="}}],
        {"uri": "https://example.com/doc.md"},
    ],
)
def test_document_content_takes_every_spec_form(content):
    doc = Document.model_validate({"content": content, "mime_type": "text/plain"})
    assert dump(doc) == {"content": content, "mime_type": "text/plain"}
