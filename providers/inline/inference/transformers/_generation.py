"""One generation job, run in a model's worker thread: tokenize, sample, detokenize, stop.

Sampling is done by logits processors with a per-request ``torch.Generator``
(the last processor draws the token and masks every other one, so generate()'s
greedy step picks it): a seed reproduces its output whatever else runs, and
no global RNG state is shared between models.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Any, Callable

import torch
from transformers import (
    GenerationConfig,
    LogitsProcessor,
    LogitsProcessorList,
    MinNewTokensLengthLogitsProcessor,
    MinPLogitsWarper,
    RepetitionPenaltyLogitsProcessor,
    StoppingCriteria,
    StoppingCriteriaList,
    TemperatureLogitsWarper,
    TextIteratorStreamer,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

from stack.errors import BadRequestError

from providers.utils.inference.transformers_loading import LoadedModel
from ._plan import ChoiceResult, Delta, Finished, GenerationPlan, JobResult, Prepared, TokenLogprob

Emit = Callable[[Any], None]
GREEDY_BELOW = 1e-5  # temperatures under this are greedy decoding
# keys of chat_template_kwargs that would change how the provider calls the template
RESERVED_TEMPLATE_KWARGS = {"conversation", "tokenize", "return_dict", "return_tensors", "chat_template",
                            "add_generation_prompt", "continue_final_message", "tools", "documents"}


def run(loaded: LoadedModel, plan: GenerationPlan, cancel: threading.Event, emit: Emit | None) -> JobResult:
    """Tokenize the prompts, then generate ``plan.n`` choices for each, one after another.

    ``emit`` (streams) receives Prepared, then Delta and Finished events as they happen.
    """
    prompts, texts = prepare(loaded, plan)
    prompt_tokens = sum(len(ids) for ids in prompts)
    limits = [_max_new_tokens(loaded, plan, len(ids)) for ids in prompts]
    bias = _logit_bias(loaded, plan)
    if emit is not None:  # every 400 is raised before this, so a stream never starts with one
        emit(Prepared(prompt_tokens=prompt_tokens, prompt_texts=texts, prompt_ids=prompts))
    generator = torch.Generator(device=loaded.model.device)
    if plan.sampling.seed is not None:
        generator.manual_seed(plan.sampling.seed)
    elif loaded.rng is not None:  # the provider seeded torch once: unseeded requests still reproduce run after run
        generator.manual_seed(int(torch.randint(0, 2**62, (1,), generator=loaded.rng)))
    else:
        generator.seed()
    choices: list[ChoiceResult] = []
    for p, ids in enumerate(prompts):
        for j in range(plan.n):
            if cancel.is_set():
                return JobResult(prompt_tokens, texts, choices, prompts)
            choices.append(
                _generate(loaded, plan, ids, p * plan.n + j, limits[p], bias, generator, cancel, emit)
            )
    return JobResult(prompt_tokens, texts, choices, prompts)


# -- prompts -------------------------------------------------------------------------


def prepare(loaded: LoadedModel, plan: GenerationPlan) -> tuple[list[list[int]], list[str]]:
    """Token ids of each prompt, and its text (for echo)."""
    tokenizer = loaded.tokenizer
    if plan.kind == "chat":
        text = _render_chat(loaded, plan)
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        return [ids], [text]
    prompts, texts = [], []
    for prompt in plan.prompts:
        if isinstance(prompt, str):
            ids = tokenizer(prompt, add_special_tokens=True)["input_ids"]
            if not ids:
                raise BadRequestError("the prompt is empty", field="prompt")
            texts.append(prompt)
        else:
            bad = [t for t in prompt if not 0 <= t < loaded.vocab_size]
            if bad or not prompt:
                raise BadRequestError(
                    f"token ids must be in [0, {loaded.vocab_size}) and there must be at least one; got {bad[:5] or prompt}",
                    field="prompt",
                )
            ids = list(prompt)
            texts.append(tokenizer.decode(ids, skip_special_tokens=False))
        prompts.append(ids)
    return prompts, texts


def _render_chat(loaded: LoadedModel, plan: GenerationPlan) -> str:
    template = plan.chat_template or loaded.chat_template
    if not template:
        raise BadRequestError(
            f"model {plan.model_id!r} has no chat template: send one as chat_template, set chat_template in the "
            "provider config, or use /v1/completions",
            field="messages",
        )
    reserved = sorted(RESERVED_TEMPLATE_KWARGS & set(plan.chat_template_kwargs))
    if reserved:
        raise BadRequestError(f"{reserved[0]!r} is set by the server, not by chat_template_kwargs", field="chat_template_kwargs")
    try:
        return loaded.tokenizer.apply_chat_template(
            plan.messages,
            chat_template=template,
            tokenize=False,
            add_generation_prompt=plan.add_generation_prompt,
            continue_final_message=plan.continue_final_message,
            **plan.chat_template_kwargs,
        )
    except Exception as exc:  # noqa: BLE001 - jinja errors, raise_exception() in templates, bad flag combinations
        raise BadRequestError(f"the chat template could not render these messages: {exc}", field="messages") from None


def _max_new_tokens(loaded: LoadedModel, plan: GenerationPlan, prompt_len: int) -> int:
    field_name = "messages" if plan.kind == "chat" else "prompt"
    context = loaded.context_length
    if context is not None and prompt_len >= context:
        raise BadRequestError(
            f"the prompt is {prompt_len} tokens; model {plan.model_id!r} has a context window of {context}",
            field=field_name,
        )
    room = context - prompt_len if context is not None else None
    if plan.max_tokens is not None:
        if room is not None and plan.max_tokens > room:
            raise BadRequestError(
                f"{plan.max_tokens} tokens asked; the prompt is {prompt_len} tokens and the context window "
                f"{context}, which leaves {room}",
                field=plan.max_tokens_field,
            )
        return plan.max_tokens
    return min(plan.default_max_tokens, room) if room is not None else plan.default_max_tokens


def _logit_bias(loaded: LoadedModel, plan: GenerationPlan) -> dict[int, float]:
    bias = {}
    for key, value in plan.sampling.logit_bias.items():
        try:
            token_id = int(key)
        except ValueError:
            raise BadRequestError(f"keys are token ids; got {key!r}", field="logit_bias") from None
        if not 0 <= token_id < loaded.vocab_size:
            raise BadRequestError(f"token id {token_id} is not in [0, {loaded.vocab_size})", field="logit_bias")
        if not -100 <= value <= 100:
            raise BadRequestError(f"bias {value} for token {token_id} is outside [-100, 100]", field="logit_bias")
        bias[token_id] = float(value)
    return bias


# -- one choice ----------------------------------------------------------------------


def _generate(loaded: LoadedModel, plan: GenerationPlan, ids: list[int], index: int, max_new: int,
              bias: dict[int, float], generator: torch.Generator, cancel: threading.Event,
              emit: Emit | None) -> ChoiceResult:
    device = loaded.model.device
    eos_ids = [*loaded.eos_ids, *(t for t in plan.stop_token_ids if t not in loaded.eos_ids)]
    recorder = _Recorder() if plan.logprobs is not None else None
    sink = _ChoiceSink(loaded, plan, index, ids, max_new, eos_ids, recorder, emit)
    processors: list[Any] = [recorder] if recorder is not None else []
    processors += _processors(loaded, plan, len(ids), bias, eos_ids, generator, device)
    config = GenerationConfig(
        max_new_tokens=max_new, do_sample=False, num_beams=1, repetition_penalty=1.0,
        eos_token_id=eos_ids or None, pad_token_id=loaded.pad_id,
    )
    input_ids = torch.tensor([ids], dtype=torch.long, device=device)
    with torch.inference_mode():
        loaded.model.generate(
            input_ids=input_ids,
            attention_mask=torch.ones_like(input_ids),
            generation_config=config,
            logits_processor=LogitsProcessorList(processors),
            stopping_criteria=StoppingCriteriaList([_Halt(cancel, sink)]),
            streamer=sink,
        )
    return sink.result()


def _processors(loaded: LoadedModel, plan: GenerationPlan, prompt_len: int, bias: dict[int, float],
                eos_ids: list[int], generator: torch.Generator, device: Any) -> list[Any]:
    s, defaults = plan.sampling, loaded.defaults
    out: list[Any] = []
    if bias:
        out.append(_Bias(bias, loaded.vocab_size, device))
    if plan.min_tokens and eos_ids:
        out.append(MinNewTokensLengthLogitsProcessor(prompt_len, plan.min_tokens, eos_ids, device=device))
    penalty = s.repetition_penalty if s.repetition_penalty is not None else defaults.get("repetition_penalty", 1.0)
    if penalty != 1.0:
        out.append(RepetitionPenaltyLogitsProcessor(penalty))
    if s.frequency_penalty or s.presence_penalty:
        out.append(_Penalties(prompt_len, s.frequency_penalty, s.presence_penalty))
    temperature = s.temperature if s.temperature is not None else defaults.get("temperature", 1.0)
    if temperature < GREEDY_BELOW:
        return out
    if temperature != 1.0:
        out.append(TemperatureLogitsWarper(temperature))
    top_k = s.top_k if s.top_k is not None else defaults.get("top_k", 0)
    if top_k and top_k > 0:
        out.append(TopKLogitsWarper(int(top_k)))
    top_p = s.top_p if s.top_p is not None else defaults.get("top_p", 1.0)
    if top_p < 1.0:
        out.append(TopPLogitsWarper(top_p))
    min_p = s.min_p if s.min_p is not None else defaults.get("min_p", 0.0)
    if min_p > 0.0:
        out.append(MinPLogitsWarper(min_p))
    out.append(_Sampler(generator))
    return out


class _Recorder(LogitsProcessor):
    """First processor: keeps the log-probabilities of the raw logits until the sink takes them."""

    def __init__(self) -> None:
        self.rows: deque[torch.Tensor] = deque(maxlen=4)

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        self.rows.append(torch.log_softmax(scores[0].float(), dim=-1))
        return scores

    def take(self) -> torch.Tensor | None:
        return self.rows.popleft() if self.rows else None


class _Bias(LogitsProcessor):
    def __init__(self, bias: dict[int, float], vocab_size: int, device: Any) -> None:
        self.bias = torch.zeros(vocab_size, device=device)
        for token_id, value in bias.items():
            self.bias[token_id] = value

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        return scores + self.bias[: scores.shape[-1]].to(scores.dtype)


class _Penalties(LogitsProcessor):
    """OpenAI's frequency and presence penalties over the tokens generated so far."""

    def __init__(self, prompt_len: int, frequency: float, presence: float) -> None:
        self.prompt_len, self.frequency, self.presence = prompt_len, frequency, presence

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        generated = input_ids[:, self.prompt_len:]
        if generated.shape[1] == 0:
            return scores
        counts = torch.zeros_like(scores).scatter_add_(1, generated, torch.ones_like(generated, dtype=scores.dtype))
        return scores - counts * self.frequency - (counts > 0).to(scores.dtype) * self.presence


class _Sampler(LogitsProcessor):
    """Last processor: draws the next token with the request's generator and masks all others."""

    def __init__(self, generator: torch.Generator) -> None:
        self.generator = generator

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        probs = torch.softmax(scores.float(), dim=-1)
        chosen = torch.multinomial(probs, 1, generator=self.generator)
        return torch.full_like(scores, float("-inf")).scatter_(1, chosen, 0.0)


class _Halt(StoppingCriteria):
    """Stops generate() once the client left or the sink is finished (a stop string)."""

    def __init__(self, cancel: threading.Event, sink: "_ChoiceSink") -> None:
        self.cancel, self.sink = cancel, sink

    def __call__(self, input_ids: torch.Tensor, scores: Any, **kwargs: Any) -> torch.Tensor:
        stop = self.cancel.is_set() or self.sink.finish_reason is not None
        return torch.full((input_ids.shape[0],), stop, dtype=torch.bool, device=input_ids.device)


# -- tokens -> text --------------------------------------------------------------------


class _Detokenizer:
    """Incremental decoding: the text a new token adds, held back while a character is incomplete."""

    CONTEXT = 6  # prompt tokens decoded along, so the first token's leading space is right

    def __init__(self, tokenizer: Any, prompt_ids: list[int], skip_special_tokens: bool) -> None:
        self.tokenizer, self.skip = tokenizer, skip_special_tokens
        self.ids = list(prompt_ids[-self.CONTEXT:])
        self.prefix, self.read = 0, len(self.ids)

    def _decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=self.skip)

    def push(self, token: int) -> str:
        self.ids.append(token)
        return self._advance(final=False)

    def flush(self) -> str:
        return self._advance(final=True)

    def _advance(self, final: bool) -> str:
        before = self._decode(self.ids[self.prefix:self.read])
        after = self._decode(self.ids[self.prefix:])
        if len(after) > len(before) and (final or not after.endswith("\ufffd")):
            self.prefix, self.read = self.read, len(self.ids)
            return after[len(before):]
        return ""


class _StopStrings:
    """Cuts the text at the first stop string; holds back a tail that may begin one."""

    def __init__(self, stops: list[str], include: bool) -> None:
        self.stops = [s for s in stops if s]
        self.include = include
        self.pending = ""

    def feed(self, text: str) -> tuple[str, bool]:
        if not self.stops:
            return text, False
        self.pending += text
        hits = [(self.pending.find(s), s) for s in self.stops if s in self.pending]
        if hits:
            at, stop = min(hits, key=lambda h: h[0])
            out = self.pending[:at] + (stop if self.include else "")
            self.pending = ""
            return out, True
        keep = max((k for s in self.stops for k in range(1, len(s)) if self.pending.endswith(s[:k])), default=0)
        out, self.pending = self.pending[: len(self.pending) - keep], self.pending[len(self.pending) - keep:]
        return out, False

    def flush(self) -> str:
        out, self.pending = self.pending, ""
        return out


class _ChoiceSink(TextIteratorStreamer):
    """generate()'s streamer for one choice: token ids in, text (and logprobs) out.

    Text goes out token by token (not word by word as TextIteratorStreamer
    does), so logprobs line up with it; ``on_finalized_text`` hands each piece
    to ``emit`` (a stream) instead of the iterator queue.
    """

    def __init__(self, loaded: LoadedModel, plan: GenerationPlan, index: int, prompt_ids: list[int], max_new: int,
                 eos_ids: list[int], recorder: _Recorder | None, emit: Emit | None) -> None:
        super().__init__(loaded.tokenizer, skip_prompt=True, skip_special_tokens=plan.skip_special_tokens)
        self.index, self.max_new, self.emit = index, max_new, emit
        self.eos_ids = set(eos_ids)
        self.recorder = recorder
        self.top = plan.logprobs or 0
        self.tokens_as_ids, self.want_ids = plan.tokens_as_ids, plan.return_token_ids
        self.token_ids: list[int] = []
        self.unsent_ids: list[int] = []
        self.detok = _Detokenizer(loaded.tokenizer, prompt_ids, plan.skip_special_tokens)
        self.stops = _StopStrings(plan.stop, plan.include_stop_str_in_output)
        self.count = 0
        self.finish_reason: str | None = None
        self.cut_by_stop_string = False
        self.parts: list[str] = []
        self.logprobs: list[TokenLogprob] = []
        self.unsent: list[TokenLogprob] = []

    def put(self, value: torch.Tensor) -> None:
        if self.next_tokens_are_prompt:
            self.next_tokens_are_prompt = False
            return
        for token in value.reshape(-1).tolist():
            self._accept(int(token))

    def _accept(self, token: int) -> None:
        if self.finish_reason is not None:  # generate() may run one step past a stop string
            return
        self.count += 1
        self.unsent_ids.append(token)
        row = self.recorder.take() if self.recorder is not None else None
        if token in self.eos_ids:
            self.finish_reason = "stop"
            return
        if row is not None:
            self.unsent.append(self._entry(token, row))
        text, hit = self.stops.feed(self.detok.push(token))
        if hit:
            self.finish_reason, self.cut_by_stop_string = "stop", True
        if text or (hit and self.unsent):
            self.on_finalized_text(text)

    def _entry(self, token: int, row: torch.Tensor) -> TokenLogprob:
        decode = (lambda ids: f"token_id:{ids[0]}") if self.tokens_as_ids else self.tokenizer.decode
        top = []
        if self.top:
            values, ids = row.topk(min(self.top, row.shape[-1]))
            top = [(decode([i]), v) for i, v in zip(ids.tolist(), values.tolist())]
        return TokenLogprob(token=decode([token]), logprob=float(row[token]), top=top)

    def end(self) -> None:
        if not self.cut_by_stop_string:
            text, hit = self.stops.feed(self.detok.flush())
            if not hit:
                text += self.stops.flush()
            if hit:
                self.finish_reason = "stop"
            if text or self.unsent or (self.want_ids and self.unsent_ids):
                self.on_finalized_text(text)
        if self.finish_reason is None:
            self.finish_reason = "length" if self.count >= self.max_new else "stop"
        self.next_tokens_are_prompt = True
        if self.emit is not None:
            self.emit(Finished(self.index, self.finish_reason, self.count))

    def on_finalized_text(self, text: str, stream_end: bool = False) -> None:
        entries, self.unsent = self.unsent, []
        ids, self.unsent_ids = self.unsent_ids, []
        self.parts.append(text)
        self.logprobs += entries
        self.token_ids += ids
        if self.emit is not None:
            self.emit(Delta(self.index, text, entries, self.count, ids))

    def result(self) -> ChoiceResult:
        return ChoiceResult(
            index=self.index,
            text="".join(self.parts),
            finish_reason=self.finish_reason or "stop",
            completion_tokens=self.count,
            logprobs=self.logprobs if self.recorder is not None else None,
            token_ids=self.token_ids + self.unsent_ids,
        )
