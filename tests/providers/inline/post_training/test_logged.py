"""Training examples from exported trajectories and prompt logs (no torch: the conversion runs in the server)."""

from __future__ import annotations

import json

import pytest

from providers.inline.post_training.huggingface._logged import (
    dpo_from_trajectories,
    is_positive,
    sft_from_prompt_logs,
    sft_from_trajectories,
)
from stack.errors import BadRequestError

FIELD = "training_config.data_config.dataset_id 'runs'"


def trajectory(group: str, index: int, reward: float, answer: str, prompt: str = "2+2?") -> dict:
    messages = [{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}]
    return {"model_id": "m", "split": "train", "step": 0, "group_index": 0, "group_id": group,
            "trajectory_index": index, "reward": reward, "chat_completion_input": json.dumps(messages)}


def test_sft_takes_the_best_trajectory_of_each_group():
    rows = [trajectory("a:0", 0, 0.2, "5"), trajectory("a:0", 1, 0.9, "4"), trajectory("a:0", 2, 0.1, "3"),
            trajectory("b:0", 0, 1.0, "blue", "sky?")]
    assert sft_from_trajectories(rows, FIELD) == [
        {"messages": [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}]},
        {"messages": [{"role": "user", "content": "sky?"}, {"role": "assistant", "content": "blue"}]},
    ]


def test_dpo_pairs_best_over_worst_and_skips_ties_and_duplicates():
    rows = [trajectory("a:0", 0, 0.2, "5"), trajectory("a:0", 1, 0.9, "4"), trajectory("a:0", 2, 0.5, "3"),
            trajectory("a:0", 1, 0.9, "4"),  # exported twice
            trajectory("tie:0", 0, 1.0, "x"), trajectory("tie:0", 1, 1.0, "y")]
    assert dpo_from_trajectories(rows, FIELD) == [
        {"prompt": [{"role": "user", "content": "2+2?"}], "chosen": "4", "rejected": "5"}]


def test_groups_without_ids_are_one_index_of_one_logged_step():
    rows = [{k: v for k, v in trajectory("", i, r, a).items() if k != "group_id"} for i, r, a in
            [(0, 0.0, "5"), (1, 1.0, "4")]]
    rows.append({**rows[0], "step": 1})  # another step's group 0: a group of its own
    assert dpo_from_trajectories(rows, FIELD) == [
        {"prompt": [{"role": "user", "content": "2+2?"}], "chosen": "4", "rejected": "5"}]


def test_trajectories_with_tool_calls_are_not_trained_on():
    tool = trajectory("a:0", 0, 1.0, "")
    tool["chat_completion_input"] = json.dumps([
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": None, "tool_calls": [{"id": "1", "type": "function",
                                                               "function": {"name": "w", "arguments": "{}"}}]}])
    rows = [tool, trajectory("a:0", 1, 0.5, "sunny")]
    assert sft_from_trajectories(rows, FIELD)[0]["messages"][-1]["content"] == "sunny"
    with pytest.raises(BadRequestError, match="none of its 1 groups has a trajectory in plain chat") as err:
        sft_from_trajectories([tool], FIELD)
    assert err.value.field == FIELD


def test_wrong_shapes_and_no_pairs_are_400s_naming_the_dataset_and_column():
    with pytest.raises(BadRequestError, match="row 0 has no numeric column 'reward'") as err:
        sft_from_trajectories([{"input_query": "q", "expected_answer": "a"}], FIELD)
    assert err.value.field == FIELD
    with pytest.raises(BadRequestError, match="row 0 has no group column 'group_id'"):
        sft_from_trajectories([{"reward": 1, "chat_completion_input": "[]"}], FIELD)
    with pytest.raises(BadRequestError, match="none of its 1 groups gives a preference pair: 1 have"):
        dpo_from_trajectories([trajectory("a:0", 0, 1.0, "x"), trajectory("a:0", 1, 1.0, "y")], FIELD)


@pytest.mark.parametrize(("feedback", "positive"), [
    ([{"type": "rating", "value": "good"}], True),
    ([{"type": "rating", "value": "Positive"}], True),
    ([{"type": "rating", "value": True}], True),
    ([{"type": "rating", "value": "bad"}], False),
    ([{"type": "rating", "value": "good"}, {"type": "rating", "value": "bad"}], False),  # the latest wins
    ([{"type": "rating", "value": "good"}, {"type": "rating", "unset": True}], False),
    ([{"type": "action", "value": "copied"}], False),
    ([], False),
])
def test_positive_feedback(feedback, positive):
    assert is_positive(feedback) is positive


def log(output: str, feedback: list, question: str = "hi") -> dict:
    return {"log_id": f"log_{output}", "messages": json.dumps([{"role": "user", "content": question}]),
            "output": output, "feedback": feedback}


def test_prompt_logs_give_the_positive_logs_and_the_corrected_ones():
    rows = [log("hello", [{"type": "rating", "value": "good"}]), log("go away", [{"type": "rating", "value": "bad"}]),
            log("hullo", [{"type": "rating", "value": "bad"}, {"type": "correction", "value": "hello there"}]),
            log("hey", [])]
    assert [r["messages"][-1] for r in sft_from_prompt_logs(rows, FIELD)] == [
        {"role": "assistant", "content": "hello"}, {"role": "assistant", "content": "hello there"}]


def test_prompt_logs_without_positive_feedback_are_a_400():
    with pytest.raises(BadRequestError, match="none of its 2 logs has positive feedback") as err:
        sft_from_prompt_logs([log("a", []), log("b", [{"type": "rating", "value": "bad"}])], FIELD)
    assert err.value.field == FIELD
    with pytest.raises(BadRequestError, match="row 0 has no column 'feedback'"):
        sft_from_prompt_logs([{"messages": "[]", "output": "x"}], FIELD)
    with pytest.raises(BadRequestError, match="none of its 1 logs has positive feedback"):  # junk is no feedback
        sft_from_prompt_logs([log("a", ["good", None, {"type": "rating", "value": ["good"]}])], FIELD)


def test_rows_with_odd_values_are_read_not_crashed_on():
    rows = [trajectory("a:0", 0, 1.0, "4"), {**trajectory("a:0", 1, 0.0, "5"), "trajectory_index": [1]},
            {**trajectory({"odd": "id"}, 0, 0.5, "x"), "chat_completion_input": 7}]
    assert sft_from_trajectories(rows, FIELD) == [
        {"messages": [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}]}]
