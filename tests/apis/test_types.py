"""The parameter type system: every ParamType member parses by its ``type``."""

import pytest
from pydantic import TypeAdapter, ValidationError

from stack.apis import _types

param_type = TypeAdapter(_types.ParamType)

MEMBERS = {
    "string": _types.StringType,
    "number": _types.NumberType,
    "boolean": _types.BooleanType,
    "array": _types.ArrayType,
    "object": _types.ObjectType,
    "json": _types.JsonType,
    "union": _types.UnionType,
    "chat_completion_input": _types.ChatCompletionInputType,
    "completion_input": _types.CompletionInputType,
    "agent_turn_input": _types.AgentTurnInputType,
}


@pytest.mark.parametrize("tag,cls", MEMBERS.items())
def test_each_param_type_parses_and_round_trips(tag, cls):
    parsed = param_type.validate_python({"type": tag})
    assert type(parsed) is cls
    assert parsed.model_dump(mode="json") == {"type": tag}
    assert param_type.validate_json(param_type.dump_json(parsed)) == parsed


@pytest.mark.parametrize("tag,cls", MEMBERS.items())
def test_constructing_without_type_fills_it_in(tag, cls):
    assert cls().type == tag


@pytest.mark.parametrize("bad", [{"type": "integer"}, {"type": None}, {}])
def test_unknown_or_missing_discriminator_is_rejected(bad):
    with pytest.raises(ValidationError):
        param_type.validate_python(bad)
