"""Inference wire types: what clients send and what they get back parses as the spec says."""

import pytest
from pydantic import TypeAdapter, ValidationError

from stack.apis._content import (
    URL,
    ImageContentItem,
    InterleavedContent,
    InterleavedContentItem,
    TextContentItem,
)
from stack.apis.inference import (
    BuiltinTool,
    ChatCompletionResponse,
    ChatCompletionResponseEventType,
    ChatCompletionResponseStreamChunk,
    CompletionMessage,
    CompletionResponse,
    CompletionResponseStreamChunk,
    EmbeddingsResponse,
    GrammarResponseFormat,
    GreedySamplingStrategy,
    JsonSchemaResponseFormat,
    Message,
    ResponseFormat,
    SamplingParams,
    StopReason,
    SystemMessage,
    ToolCall,
    ToolCallDelta,
    ToolCallParseStatus,
    ToolDefinition,
    ToolResponseMessage,
    TopKSamplingStrategy,
    TopPSamplingStrategy,
    UserMessage,
)

messages = TypeAdapter(list[Message])

CHAT_MESSAGES = [
    {"role": "system", "content": "You are terse."},
    {
        "role": "user",
        "content": [
            {"type": "text", "text": "What is in this picture?"},
            {"type": "image", "image": {"url": {"uri": "https://example.com/cat.png"}}},
            {"type": "image", "image": {"data": "iVBORw0KGgo="}},
        ],
        "context": "retrieved: cats are mammals",
    },
    {
        "role": "assistant",
        "content": "",
        "stop_reason": "end_of_message",
        "tool_calls": [
            {
                "call_id": "c1",
                "tool_name": "get_weather",
                "arguments": {"city": "Paris", "days": 3, "units": ["c"], "opts": {"hourly": True}},
            },
            {"call_id": "c2", "tool_name": "brave_search", "arguments": {"query": "cats"}},
        ],
    },
    {"role": "tool", "call_id": "c1", "tool_name": "get_weather", "content": "sunny"},
]


def test_every_message_role_parses_into_its_own_type():
    parsed = messages.validate_python(CHAT_MESSAGES)
    assert [type(m) for m in parsed] == [
        SystemMessage,
        UserMessage,
        CompletionMessage,
        ToolResponseMessage,
    ]
    user = parsed[1]
    assert isinstance(user.content[0], TextContentItem)
    assert isinstance(user.content[1], ImageContentItem)
    assert user.content[1].image.url == URL(uri="https://example.com/cat.png")
    assert user.content[2].image.data == "iVBORw0KGgo="
    assert parsed[2].tool_calls[0].arguments["opts"] == {"hourly": True}


def test_messages_round_trip_through_json():
    parsed = messages.validate_python(CHAT_MESSAGES)
    dumped = messages.dump_python(parsed, mode="json", exclude_none=True)
    assert dumped == CHAT_MESSAGES
    assert messages.validate_json(messages.dump_json(parsed)) == parsed


def test_unknown_role_is_rejected_naming_the_discriminator():
    with pytest.raises(ValidationError) as err:
        messages.validate_python([{"role": "developer", "content": "hi"}])
    assert "role" in str(err.value)


def test_message_without_role_is_rejected():
    with pytest.raises(ValidationError):
        messages.validate_python([{"content": "hi"}])


def test_builtin_tool_names_become_the_enum_and_others_stay_strings():
    call = ToolCall.model_validate({"call_id": "1", "tool_name": "brave_search", "arguments": {}})
    assert call.tool_name is BuiltinTool.brave_search
    call = ToolCall.model_validate_json('{"call_id": "1", "tool_name": "code_interpreter", "arguments": {}}')
    assert call.tool_name is BuiltinTool.code_interpreter
    call = ToolCall.model_validate({"call_id": "1", "tool_name": "my_fn", "arguments": {}})
    assert call.tool_name == "my_fn"
    assert call.model_dump(mode="json")["tool_name"] == "my_fn"


def test_tool_argument_values_keep_their_json_types():
    args = {"s": "x", "i": 2, "f": 2.5, "b": False, "n": None, "l": [1, "a"], "d": {"k": 1.5}}
    call = ToolCall.model_validate({"call_id": "1", "tool_name": "f", "arguments": args})
    assert call.model_dump(mode="json")["arguments"] == args
    assert type(call.arguments["i"]) is int and type(call.arguments["b"]) is bool


def test_tool_arguments_nested_deeper_than_the_spec_allows_are_rejected():
    with pytest.raises(ValidationError):
        ToolCall.model_validate({"call_id": "1", "tool_name": "f", "arguments": {"a": [[1]]}})


@pytest.mark.parametrize(
    "content, expected",
    [
        ("plain", str),
        ({"type": "text", "text": "one"}, TextContentItem),
        ({"type": "image", "image": {"url": {"uri": "file:///x.png"}}}, ImageContentItem),
        ([{"type": "text", "text": "a"}, {"type": "text", "text": "b"}], list),
    ],
)
def test_interleaved_content_takes_every_spec_form(content, expected):
    value = TypeAdapter(InterleavedContent).validate_python(content)
    assert isinstance(value, expected)
    assert TypeAdapter(InterleavedContent).dump_python(value, mode="json", exclude_none=True) == content


def test_content_item_with_unknown_type_is_rejected():
    with pytest.raises(ValidationError):
        TypeAdapter(InterleavedContentItem).validate_python({"type": "audio", "audio": "..."})


def test_sampling_params_defaults_match_the_spec():
    params = SamplingParams()
    assert params.strategy == GreedySamplingStrategy()
    assert params.max_tokens == 0
    assert params.repetition_penalty == 1.0
    assert SamplingParams.model_validate({}).model_dump(mode="json") == {
        "strategy": {"type": "greedy"},
        "max_tokens": 0,
        "repetition_penalty": 1.0,
    }


@pytest.mark.parametrize(
    "strategy, cls",
    [
        ({"type": "greedy"}, GreedySamplingStrategy),
        ({"type": "top_p", "temperature": 0.7, "top_p": 0.9}, TopPSamplingStrategy),
        ({"type": "top_k", "top_k": 40}, TopKSamplingStrategy),
    ],
)
def test_sampling_strategy_is_chosen_by_type(strategy, cls):
    params = SamplingParams.model_validate({"strategy": strategy, "max_tokens": 64})
    assert isinstance(params.strategy, cls)
    assert params.model_dump(mode="json")["strategy"] == strategy


def test_top_p_defaults_to_095():
    params = SamplingParams.model_validate({"strategy": {"type": "top_p", "temperature": 1.0}})
    assert params.strategy.top_p == 0.95


def test_bad_sampling_strategy_type_and_missing_top_k_are_rejected():
    with pytest.raises(ValidationError):
        SamplingParams.model_validate({"strategy": {"type": "beam"}})
    with pytest.raises(ValidationError):
        SamplingParams.model_validate({"strategy": {"type": "top_k"}})


def test_response_format_is_chosen_by_type():
    fmt = TypeAdapter(ResponseFormat)
    schema = {"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"]}
    parsed = fmt.validate_python({"type": "json_schema", "json_schema": schema})
    assert isinstance(parsed, JsonSchemaResponseFormat) and parsed.json_schema == schema
    parsed = fmt.validate_python({"type": "grammar", "bnf": {"root": "'yes' | 'no'"}})
    assert isinstance(parsed, GrammarResponseFormat)
    with pytest.raises(ValidationError):
        fmt.validate_python({"type": "regex", "pattern": ".*"})


def test_tool_definition_with_parameters():
    tool = ToolDefinition.model_validate(
        {
            "tool_name": "get_weather",
            "description": "Weather for a city",
            "parameters": {
                "city": {"param_type": "string", "description": "City name"},
                "days": {"param_type": "int", "required": False, "default": 1},
            },
        }
    )
    assert tool.parameters["city"].required is True
    assert tool.parameters["days"].default == 1
    builtin = ToolDefinition.model_validate({"tool_name": "wolfram_alpha"})
    assert builtin.tool_name is BuiltinTool.wolfram_alpha


def test_assistant_message_without_tool_calls_gets_an_empty_list():
    msg = CompletionMessage.model_validate(
        {"role": "assistant", "content": "hi", "stop_reason": "end_of_turn"}
    )
    assert msg.tool_calls == []
    assert msg.model_dump(mode="json")["tool_calls"] == []


def test_bad_stop_reason_is_rejected():
    with pytest.raises(ValidationError):
        CompletionMessage.model_validate({"content": "x", "stop_reason": "length"})


def test_chat_completion_response_round_trips():
    payload = {
        "completion_message": {
            "role": "assistant",
            "content": "Paris",
            "stop_reason": "end_of_turn",
            "tool_calls": [],
        },
        "logprobs": [{"logprobs_by_token": {"Paris": -0.01}}],
    }
    resp = ChatCompletionResponse.model_validate(payload)
    assert resp.completion_message.stop_reason is StopReason.end_of_turn
    assert resp.model_dump(mode="json") == payload


@pytest.mark.parametrize(
    "delta",
    [
        {"type": "text", "text": "Hel"},
        {"type": "image", "image": "iVBORw0KGgo="},
        {"type": "tool_call", "tool_call": '{"city": "Pa', "parse_status": "in_progress"},
        {
            "type": "tool_call",
            "tool_call": {"call_id": "c1", "tool_name": "get_weather", "arguments": {"city": "Paris"}},
            "parse_status": "succeeded",
        },
    ],
)
def test_chat_stream_chunk_deltas_round_trip(delta):
    payload = {"event": {"event_type": "progress", "delta": delta}}
    chunk = ChatCompletionResponseStreamChunk.model_validate(payload)
    assert chunk.event.event_type is ChatCompletionResponseEventType.progress
    assert chunk.model_dump(mode="json", exclude_none=True) == payload


def test_partial_tool_call_stays_text_and_full_one_becomes_tool_call():
    partial = ToolCallDelta.model_validate(
        {"type": "tool_call", "tool_call": "{", "parse_status": "started"}
    )
    assert partial.tool_call == "{"
    done = ToolCallDelta.model_validate(
        {
            "type": "tool_call",
            "tool_call": {"call_id": "c", "tool_name": "f", "arguments": {}},
            "parse_status": "succeeded",
        }
    )
    assert isinstance(done.tool_call, ToolCall)
    assert done.parse_status is ToolCallParseStatus.succeeded


def test_stream_chunk_with_unknown_delta_type_is_rejected():
    with pytest.raises(ValidationError):
        ChatCompletionResponseStreamChunk.model_validate(
            {"event": {"event_type": "progress", "delta": {"type": "audio", "audio": ""}}}
        )


def test_completion_response_and_chunk():
    resp = CompletionResponse.model_validate({"content": "4", "stop_reason": "out_of_tokens"})
    assert resp.stop_reason is StopReason.out_of_tokens
    chunk = CompletionResponseStreamChunk.model_validate({"delta": "4"})
    assert chunk.stop_reason is None
    assert chunk.model_dump(mode="json", exclude_none=True) == {"delta": "4"}


def test_embeddings_response():
    resp = EmbeddingsResponse.model_validate({"embeddings": [[0.1, 0.2], [0.3, 0.4]]})
    assert resp.model_dump(mode="json") == {"embeddings": [[0.1, 0.2], [0.3, 0.4]]}
    with pytest.raises(ValidationError):
        EmbeddingsResponse.model_validate({"embeddings": [["a"]]})
