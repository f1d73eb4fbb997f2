"""Logged trajectories -> token sequences (inline::huggingface ``_sequences``): tokens and old
log-probabilities from the choices where the log has them, else from the chat template."""

from __future__ import annotations

import math

from providers.inline.post_training.huggingface._sequences import (
    Tokenizing,
    dialog_sequences,
    trajectory_sequences,
)

END = 999


def tokenizing(max_len: int = 1024) -> Tokenizing:
    """A test double of a tokenizer: one token a character; the template writes 'role:content|'."""
    def render(messages, prompt):
        return "".join(f"{m['role'][0]}:{m['content']}|" for m in messages) + ("a:" if prompt else "")

    return Tokenizing(render=render, encode=lambda text: [ord(c) for c in text], end_ids={END}, end_of_turn=END,
                      max_len=max_len)


USER = {"role": "user", "content": "hi"}
PROMPT = [ord(c) for c in "u:hi|a:"]


def choice(content: str, **extra):
    return {"finish_reason": "stop", "index": 0, "message": {"role": "assistant", "content": content}, **extra}


def logprobs(tokens, values):
    return {"content": [{"token": t, "logprob": v, "top_logprobs": []} for t, v in zip(tokens, values)]}


def nan_as_none(values):
    return [None if math.isnan(v) else v for v in values]


def test_token_ids_and_logprobs_of_the_choice_are_used_and_the_turn_end_is_learned():
    logged = choice("yo", token_ids=[7, 8], logprobs=logprobs(["y", "o"], [-0.5, -1.5]))
    [seq] = trajectory_sequences(tokenizing(), {"messages_and_choices": [USER, logged], "reward": 1})
    assert seq.ids == PROMPT + [7, 8, END]
    assert seq.mask == [0] * len(PROMPT) + [1, 1, 1]
    assert nan_as_none(seq.old) == [0.0] * len(PROMPT) + [-0.5, -1.5, None]  # the end's: computed later


def test_token_id_strings_of_vllm_logprobs_give_the_ids():
    logged = choice("yo", logprobs=logprobs(["token_id:7", "token_id:8", f"token_id:{END}"], [-0.5, -1.5, -0.1]))
    [seq] = trajectory_sequences(tokenizing(), {"messages_and_choices": [USER, logged], "reward": 1})
    assert seq.ids == PROMPT + [7, 8, END] and seq.old[-3:] == [-0.5, -1.5, -0.1]


def test_text_logprobs_that_line_up_with_our_tokens_are_kept_others_recomputed():
    lined_up = choice("yo", logprobs=logprobs(["y", "o"], [-0.5, -1.5]))
    [seq] = trajectory_sequences(tokenizing(), {"messages_and_choices": [USER, lined_up], "reward": 1})
    assert seq.ids == PROMPT + [ord("y"), ord("o"), END] and nan_as_none(seq.old[-3:]) == [-0.5, -1.5, None]
    other = choice("yo", logprobs=logprobs(["yo"], [-0.5]))  # one logprob for two of our tokens
    [seq] = trajectory_sequences(tokenizing(), {"messages_and_choices": [USER, other], "reward": 1})
    assert seq.ids == PROMPT + [ord(c) for c in "yo|"]  # the template's rendering
    assert all(math.isnan(v) for v in seq.old[len(PROMPT):])


def test_every_choice_and_additional_history_is_a_sequence_with_what_came_before_as_prompt():
    trajectory = {"messages_and_choices": [USER, choice("a"), {"role": "user", "content": "b"}, choice("c")],
                  "additional_histories": [{"messages_and_choices": [USER, choice("d")]}], "reward": 0}
    first, second, extra = trajectory_sequences(tokenizing(), trajectory)
    assert second.ids[: second.mask.index(1)] == [ord(c) for c in "u:hi|a:a|u:b|a:"]
    assert [first.ids[-2], second.ids[-2], extra.ids[-2]] == [ord("a"), ord("c"), ord("d")]


def test_long_sequences_are_cut_and_dialogs_learn_their_assistant_turns():
    [seq] = trajectory_sequences(tokenizing(max_len=len(PROMPT) + 2),
                                 {"messages_and_choices": [USER, choice("long answer")], "reward": 1})
    assert len(seq.ids) == len(PROMPT) + 2 and seq.trained_tokens == 2
    sequences = dialog_sequences(tokenizing(), [USER, {"role": "assistant", "content": "ok"}])
    assert [s.ids[len(PROMPT):] for s in sequences] == [[ord("o"), ord("k"), ord("|")]]
