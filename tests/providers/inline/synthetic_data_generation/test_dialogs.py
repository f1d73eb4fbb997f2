"""How the request's flat list of messages is cut into dialogs to answer."""

from __future__ import annotations

import pytest
from pydantic import TypeAdapter

from providers.inline.synthetic_data_generation.sample_and_filter._dialogs import split_dialogs
from stack.apis.inference import Message
from stack.errors import BadRequestError

MESSAGES = TypeAdapter(list[Message])


def msgs(*pairs):
    return MESSAGES.validate_python([
        {"role": role, "content": text, **({"stop_reason": "end_of_turn"} if role == "assistant" else {})}
        for role, text in pairs])


def roles_and_texts(dialog):
    return [(m.role, m.content) for m in dialog.messages]


def test_each_unanswered_user_message_is_a_dialog_and_a_leading_system_message_is_shared():
    dialogs = split_dialogs(msgs(("system", "be brief"), ("user", "a?"), ("user", "b?")))
    assert [roles_and_texts(d) for d in dialogs] == [
        [("system", "be brief"), ("user", "a?")], [("system", "be brief"), ("user", "b?")]]
    assert [d.prompt for d in dialogs] == ["a?", "b?"]


def test_an_answered_user_message_is_history_of_the_next_dialog():
    [dialog] = split_dialogs(msgs(("user", "hi"), ("assistant", "hello"), ("user", "2+2?")))
    assert roles_and_texts(dialog) == [("user", "hi"), ("assistant", "hello"), ("user", "2+2?")]
    assert dialog.transcript() == "user: hi\nassistant: hello\nuser: 2+2?"


def test_a_dialog_with_its_own_system_message_does_not_get_the_shared_one():
    dialogs = split_dialogs(msgs(("system", "shared"), ("user", "a?"), ("system", "own"), ("user", "b?")))
    assert [roles_and_texts(d) for d in dialogs] == [
        [("system", "shared"), ("user", "a?")], [("system", "own"), ("user", "b?")]]


@pytest.mark.parametrize("pairs, field", [
    ((), "dialogs"),
    ((("system", "only"),), "dialogs"),
    ((("user", "a?"), ("assistant", "b")), "dialogs"),
    ((("user", "a?"), ("user", "b?"), ("assistant", "c")), "dialogs[1]"),
])
def test_a_list_with_nothing_left_to_answer_is_a_400_naming_where(pairs, field):
    with pytest.raises(BadRequestError) as info:
        split_dialogs(msgs(*pairs))
    assert info.value.field == field
