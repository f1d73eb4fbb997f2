"""The parameter type system: the declared type of a dataset column or a scoring result."""

from __future__ import annotations

from typing import Annotated, Literal, Union

from pydantic import BaseModel, Field


class StringType(BaseModel):
    type: Literal["string"] = "string"


class NumberType(BaseModel):
    type: Literal["number"] = "number"


class BooleanType(BaseModel):
    type: Literal["boolean"] = "boolean"


class ArrayType(BaseModel):
    type: Literal["array"] = "array"


class ObjectType(BaseModel):
    type: Literal["object"] = "object"


class JsonType(BaseModel):
    type: Literal["json"] = "json"


class UnionType(BaseModel):
    type: Literal["union"] = "union"


class ChatCompletionInputType(BaseModel):
    """A list of chat messages, the input of a chat completion."""

    type: Literal["chat_completion_input"] = "chat_completion_input"


class CompletionInputType(BaseModel):
    """The content of a completion request."""

    type: Literal["completion_input"] = "completion_input"


class AgentTurnInputType(BaseModel):
    """The input of an agent turn."""

    type: Literal["agent_turn_input"] = "agent_turn_input"


ParamType = Annotated[
    Union[
        StringType,
        NumberType,
        BooleanType,
        ArrayType,
        ObjectType,
        JsonType,
        UnionType,
        ChatCompletionInputType,
        CompletionInputType,
        AgentTurnInputType,
    ],
    Field(discriminator="type"),
]

__all__ = [
    "AgentTurnInputType",
    "ArrayType",
    "BooleanType",
    "ChatCompletionInputType",
    "CompletionInputType",
    "JsonType",
    "NumberType",
    "ObjectType",
    "ParamType",
    "StringType",
    "UnionType",
]
