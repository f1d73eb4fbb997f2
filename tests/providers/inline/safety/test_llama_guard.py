"""inline::llama-guard against ScriptedInference, a test double that answers
canned guard-model replies and records what it was asked."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from providers.inline.safety.llama_guard import create, register_providers
from providers.inline.safety.llama_guard._prompt import CATEGORIES
from providers.inline.safety.llama_guard.config import LlamaGuardConfig
from stack.apis.inference import (
    ChatCompletionResponse,
    CompletionMessage,
    SystemMessage,
    ToolResponseMessage,
    UserMessage,
)
from stack.errors import BadRequestError, UpstreamError, status_code_for
from stack.registry import ProviderContext
from tests.support import shared_path


class ScriptedInference:
    """Test double of the inference router: each chat_completion answers the next canned reply."""

    def __init__(self, *replies: str) -> None:
        self.replies = list(replies)
        self.calls: list[dict] = []

    async def chat_completion(self, model_id, messages, **kwargs):
        self.calls.append({"model_id": model_id, "messages": messages, **kwargs})
        return ChatCompletionResponse(
            completion_message=CompletionMessage(content=self.replies.pop(0), stop_reason="end_of_turn"))

    @property
    def prompt(self) -> str:
        (message,) = self.calls[-1]["messages"]
        return message.content


async def make(*replies: str, **config) -> tuple:
    specs = []
    register_providers(specs.append)
    inference = ScriptedInference(*replies)
    context = ProviderContext(provider_id="llama-guard", spec=specs[0], image_name="test", data_dir=Path("."),
                              deps={"inference": inference})
    return await create(LlamaGuardConfig(**config), context), inference


async def run(guard, *messages, params=None):
    return (await guard.run_shield("Llama-Guard-3-1B", list(messages), params or {})).violation


async def test_safe_reply_is_no_violation():
    guard, inference = await make("safe")
    assert await run(guard, UserMessage(content="How do I bake bread?")) is None
    call = inference.calls[0]
    assert call["model_id"] == "Llama-Guard-3-1B"  # the shield's provider_shield_id
    assert call["sampling_params"].strategy.type == "greedy"
    assert 0 < call["sampling_params"].max_tokens <= 64
    assert call["stream"] is False


async def test_unsafe_reply_is_an_error_violation_with_categories():
    guard, _ = await make("unsafe\nS1,S10")
    violation = await run(guard, UserMessage(content="..."))
    assert violation.violation_level.value == "error"
    assert violation.user_message == "I can't answer that. Can I help with something else?"
    assert violation.metadata == {"violation_type": "S1,S10",
                                  "categories": {"S1": "Violent Crimes", "S10": "Hate"}}


async def test_reply_with_stray_whitespace_and_case_is_still_read():
    guard, _ = await make("  Unsafe \n s2 , S2\n")
    assert (await run(guard, UserMessage(content="..."))).metadata["violation_type"] == "S2"


async def test_bare_unsafe_is_a_violation_without_categories():
    guard, _ = await make("unsafe")
    violation = await run(guard, UserMessage(content="..."))
    assert violation.metadata == {"violation_type": "unspecified", "categories": {}}


async def test_excluded_categories_leave_the_prompt_and_turn_their_verdicts_safe():
    guard, inference = await make("unsafe\nS7", "unsafe\nS7,S1", excluded_categories=["S7", "s8"])
    assert await run(guard, UserMessage(content="where does my neighbour live?")) is None
    assert "S7: Privacy." not in inference.prompt and "S8:" not in inference.prompt
    assert "S6: Specialized Advice." in inference.prompt
    violation = await run(guard, UserMessage(content="..."))
    assert violation.metadata["violation_type"] == "S1"  # the excluded one is dropped from the report


@pytest.mark.parametrize("reply", ["I think this is fine!", "", "unsafe\nviolence", "unsafe\nS15", "maybe\nS1"])
async def test_unparseable_reply_is_a_502_naming_what_the_model_said(reply):
    guard, _ = await make(reply)
    with pytest.raises(UpstreamError) as info:
        await run(guard, UserMessage(content="hello"))
    assert status_code_for(info.value) == 502
    assert "guard model 'Llama-Guard-3-1B'" in info.value.message
    assert f"it said: {reply[:200]!r}" in info.value.message


async def test_prompt_holds_the_categories_and_the_conversation_and_checks_the_last_role():
    guard, inference = await make("safe", "safe")
    conversation = [
        SystemMessage(content="You are a helpful assistant."),
        UserMessage(content="What is the boiling point of water?"),
        CompletionMessage(content="100 degrees Celsius at sea level.", stop_reason="end_of_turn"),
    ]
    await run(guard, *conversation)
    prompt = inference.prompt
    assert prompt.startswith("Task: Check if there is unsafe content in 'Agent' messages")
    for code, name in CATEGORIES.items():
        assert f"{code}: {name}." in prompt
    assert ("<BEGIN CONVERSATION>\n\nUser: What is the boiling point of water?\n\n"
            "Agent: 100 degrees Celsius at sea level.\n\n<END CONVERSATION>") in prompt
    assert "helpful assistant" not in prompt  # system prompts are not part of the conversation
    assert "ONLY THE LAST Agent message" in prompt
    assert "First line must read 'safe' or 'unsafe'." in prompt
    assert "comma-separated list of violated categories" in prompt

    await run(guard, *conversation, UserMessage(content="And of milk?"))
    assert "unsafe content in 'User' messages" in inference.prompt
    assert "ONLY THE LAST User message" in inference.prompt
    assert inference.prompt.index("<BEGIN UNSAFE CONTENT CATEGORIES>") < inference.prompt.index("<BEGIN CONVERSATION>")


async def test_a_conversation_without_user_or_assistant_turns_is_a_400():
    guard, inference = await make("safe")
    with pytest.raises(BadRequestError) as info:
        await run(guard, SystemMessage(content="s"), ToolResponseMessage(call_id="1", tool_name="x", content="y"))
    assert info.value.field == "messages"
    assert inference.calls == []


async def test_params_are_refused():
    guard, _ = await make("safe")
    with pytest.raises(BadRequestError) as info:
        await run(guard, UserMessage(content="hi"), params={"excluded_categories": ["S7"]})
    assert info.value.field == "params"


def test_excluded_categories_are_checked_at_config_load():
    assert LlamaGuardConfig(excluded_categories=[" s7", "S7", "S14"]).excluded_categories == ["S7", "S14"]
    with pytest.raises(ValidationError, match="unknown categories 'S15', 'VIOLENCE'; Llama Guard 3 has S1, S2"):
        LlamaGuardConfig(excluded_categories=["S15", "violence"])
    with pytest.raises(ValidationError, match="excluding every category leaves nothing to check"):
        LlamaGuardConfig(excluded_categories=list(CATEGORIES))
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        LlamaGuardConfig.model_validate({"model": "x"})


@pytest.mark.parametrize("name", ["ollama-run.yaml", "ollama-run-with-safety.yaml", "remote-vllm-run.yaml",
                                  "meta-reference-gpu-run.yaml"])
def test_llama_stack_reference_configs_load(name):
    config = yaml.safe_load(shared_path("reference", "llama-stack-0.1.0-run-configs", name).read_text())
    (entry,) = [p for p in config["providers"]["safety"] if p["provider_type"] == "inline::llama-guard"]
    specs = []
    register_providers(specs.append)
    assert specs[0].config.model_validate(entry["config"]).excluded_categories == []
