"""What a generation job is asked to do and what it reports back (plain data: no torch)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal


@dataclass
class Sampling:
    """Sampling settings; None means the model's generation_config default (else OpenAI's)."""

    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    min_p: float | None = None
    repetition_penalty: float | None = None
    frequency_penalty: float = 0.0
    presence_penalty: float = 0.0
    logit_bias: dict[str, float] = field(default_factory=dict)
    seed: int | None = None


@dataclass
class GenerationPlan:
    """One request, ready for the model's worker thread: it tokenizes, then generates ``n`` choices a prompt."""

    kind: Literal["chat", "completion"]
    model_id: str
    messages: list[dict[str, Any]] = field(default_factory=list)
    prompts: list[str | list[int]] = field(default_factory=list)
    add_generation_prompt: bool = True
    continue_final_message: bool = False
    chat_template: str | None = None
    chat_template_kwargs: dict[str, Any] = field(default_factory=dict)
    n: int = 1
    max_tokens: int | None = None
    default_max_tokens: int = 512
    max_tokens_field: str = "max_tokens"
    min_tokens: int = 0
    stop: list[str] = field(default_factory=list)
    stop_token_ids: list[int] = field(default_factory=list)
    include_stop_str_in_output: bool = False
    logprobs: int | None = None  # None: off; k: the chosen token plus the k most likely
    tokens_as_ids: bool = False  # vLLM's return_tokens_as_token_ids: logprob tokens written 'token_id:N'
    return_token_ids: bool = False  # vLLM's return_token_ids: the prompt's and each choice's token ids
    skip_special_tokens: bool = True
    echo: bool = False
    sampling: Sampling = field(default_factory=Sampling)


@dataclass
class TokenLogprob:
    token: str
    logprob: float
    top: list[tuple[str, float]] = field(default_factory=list)


@dataclass
class Prepared:
    """First event of every job: the prompts are tokenized and generation starts."""

    prompt_tokens: int
    prompt_texts: list[str]
    prompt_ids: list[list[int]] = field(default_factory=list)


@dataclass
class Delta:
    index: int
    text: str
    logprobs: list[TokenLogprob] = field(default_factory=list)
    completion_tokens: int = 0  # of this choice so far
    token_ids: list[int] = field(default_factory=list)  # generated since the last delta


@dataclass
class Finished:
    index: int
    finish_reason: str
    completion_tokens: int


@dataclass
class ChoiceResult:
    index: int
    text: str
    finish_reason: str
    completion_tokens: int
    logprobs: list[TokenLogprob] | None = None
    token_ids: list[int] = field(default_factory=list)  # every generated token, the end-of-turn one too


@dataclass
class JobResult:
    prompt_tokens: int
    prompt_texts: list[str]
    choices: list[ChoiceResult]
    prompt_ids: list[list[int]] = field(default_factory=list)

    @property
    def completion_tokens(self) -> int:
        return sum(c.completion_tokens for c in self.choices)
