"""The token loop that every request runs on a model's worker thread.

It drives ``Llama.generate`` (which reuses the KV cache of a shared prompt
prefix), checks the job's cancel flag between tokens, cuts stop strings,
holds back text that may still become a stop string or is an incomplete
UTF-8 character, and computes log-probabilities from the last logits when
asked (no ``logits_all`` needed). llama_cpp is only imported on the worker
thread.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from typing import Any, Callable

from stack.errors import BadRequestError

from ._worker import Job


@dataclass
class Sampling:
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    min_p: float = 0.0
    repeat_penalty: float = 1.0
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    seed: int | None = None


@dataclass
class TokenLogprob:
    token: str
    logprob: float
    bytes: list[int]
    top: list[tuple[str, float, list[int]]] = field(default_factory=list)


@dataclass
class Piece:
    """Text released to the client, and the log-probabilities of the tokens it came from."""

    text: str
    logprobs: list[TokenLogprob]


@dataclass
class Generated:
    text: str = ""
    finish_reason: str = "length"
    completion_tokens: int = 0
    logprobs: list[TokenLogprob] = field(default_factory=list)


@dataclass
class Limits:
    max_tokens: int | None = None
    stop: list[str] = field(default_factory=list)
    stop_token_ids: frozenset[int] = frozenset()
    ignore_eos: bool = False
    include_stop_str_in_output: bool = False
    top_logprobs: int | None = None  # None: no logprobs
    fit_to_room: bool = False  # max_tokens is the model's default: cut it to the room the prompt leaves, no 400


def tokenize(llama: Any, text: str, *, special: bool = True) -> list[int]:
    """Prompt tokens; a BOS the model wants is added once, even when the text starts with one."""
    tokens = llama.tokenize(text.encode("utf-8"), add_bos=True, special=special)
    bos = llama.token_bos()
    if len(tokens) >= 2 and tokens[0] == bos and tokens[1] == bos:
        tokens = tokens[1:]
    return tokens


def check_grammar(llama: Any, gbnf: str, *, field_name: str) -> None:
    """A BadRequestError naming ``field_name`` when llama.cpp cannot parse ``gbnf``."""
    import llama_cpp

    sampler = llama_cpp.llama_sampler_init_grammar(llama._model.vocab, gbnf.encode("utf-8"), b"root")
    if not sampler:
        raise BadRequestError("llama.cpp cannot parse this GBNF grammar (it needs a 'root' rule)", field=field_name)
    llama_cpp.llama_sampler_free(sampler)


#: the string character rule llama-cpp-python's schema converter writes, and the one JSON allows: the
#: converter's lets a raw control character (a newline, say) into a string, and a sampled tool
#: call once came back as arguments no JSON parser reads (``{"city": "Oslo}, 5\n...``)
_LOOSE_CHAR = r'char ::= [^"\\] |'
_JSON_CHAR = r'char ::= [^"\\\x7F\x00-\x1F] |'


def schema_grammar(schema: Any, *, field_name: str) -> str:
    """GBNF for JSON that follows ``schema`` (llama-cpp-python's converter, its strings held to what
    JSON allows: no raw control characters)."""
    from llama_cpp.llama_grammar import json_schema_to_gbnf

    try:
        text = json_schema_to_gbnf(json.dumps(schema))
    except Exception as exc:
        raise BadRequestError(f"cannot turn this JSON schema into a grammar: {exc}", field=field_name) from None
    return text.replace(_LOOSE_CHAR, _JSON_CHAR)


def json_grammar() -> str:
    from llama_cpp.llama_grammar import JSON_GBNF

    return JSON_GBNF


def literal(text: str) -> str:
    """A GBNF string literal."""
    return json.dumps(text)


def _held_back(pending: bytes, stops: list[bytes]) -> int:
    """How many trailing bytes of ``pending`` must wait: the start of a stop string or of a UTF-8 character."""
    keep = 0
    for stop in stops:
        for n in range(min(len(stop) - 1, len(pending)), keep, -1):
            if pending.endswith(stop[:n]):
                keep = n
                break
    # an incomplete UTF-8 sequence at the end
    for back in range(1, min(4, len(pending)) + 1):
        byte = pending[-back]
        if byte & 0xC0 == 0x80:  # continuation byte: look further back
            continue
        if byte & 0x80 == 0:
            break
        need = 2 if byte & 0xE0 == 0xC0 else 3 if byte & 0xF0 == 0xE0 else 4
        if need > back:
            keep = max(keep, back)
        break
    return keep


class _Logprobs:
    """Log-probabilities of the token just sampled, from the logits it was sampled from."""

    def __init__(self, llama: Any, top: int) -> None:
        import llama_cpp
        import numpy as np

        self.np = np
        self.llama = llama
        self.top = top
        self.n_vocab = llama.n_vocab()
        self.get_logits = lambda: llama_cpp.llama_get_logits_ith(llama.ctx, -1)
        self._pieces: dict[int, bytes] = {}

    def piece(self, token: int) -> bytes:
        found = self._pieces.get(token)
        if found is None:
            found = self._pieces[token] = self.llama.detokenize([token])
        return found

    def __call__(self, token: int, piece: bytes) -> TokenLogprob:
        np = self.np
        logits = np.ctypeslib.as_array(self.get_logits(), shape=(self.n_vocab,))
        peak = float(logits.max())
        log_norm = peak + float(np.log(np.exp(logits - peak).sum()))
        entry = TokenLogprob(piece.decode("utf-8", errors="replace"), float(logits[token]) - log_norm, list(piece))
        if self.top:
            best = np.argpartition(-logits, self.top - 1)[: self.top]
            for tid in sorted(best.tolist(), key=lambda t: -logits[t]):
                b = self.piece(tid)
                entry.top.append((b.decode("utf-8", errors="replace"), float(logits[tid]) - log_norm, list(b)))
        return entry


def check_room(limits: Limits, prompt_tokens: int, n_ctx: int) -> None:
    """400 when the ``max_tokens`` a client asked for do not fit after the prompt, as vLLM answers."""
    room = n_ctx - prompt_tokens
    max_tokens = limits.max_tokens
    if max_tokens is not None and max_tokens > room and not limits.fit_to_room:
        raise BadRequestError(
            f"{max_tokens} tokens asked; the prompt is {prompt_tokens} tokens and the context {n_ctx}, "
            f"which leaves {room}", field="max_tokens",
        )


def run(
    llama: Any,
    job: Job,
    prompt_tokens: list[int],
    sampling: Sampling,
    limits: Limits,
    *,
    grammar: str | None = None,
    on_piece: Callable[[Piece], None] | None = None,
    n_ctx: int,
) -> Generated:
    """Generate from ``prompt_tokens`` until EOS, a stop string or token, or max tokens.

    ``on_piece`` receives text as soon as it is safe to release (streaming).
    Raises JobCancelled (through ``job.check``) when the client went away.
    """
    import llama_cpp
    from llama_cpp.llama_grammar import LlamaGrammar

    room = n_ctx - len(prompt_tokens)
    if room <= 0:
        raise BadRequestError(
            f"the prompt is {len(prompt_tokens)} tokens; this model's context is {n_ctx} tokens", field="messages"
        )
    max_tokens = room if limits.max_tokens is None else min(limits.max_tokens, room)
    llama.set_seed(sampling.seed if sampling.seed is not None else random.getrandbits(31))
    vocab = llama._model.vocab
    logprob_of = _Logprobs(llama, limits.top_logprobs) if limits.top_logprobs is not None else None
    stops = [s.encode("utf-8") for s in limits.stop if s]
    result = Generated()
    text = bytearray()
    pending = b""
    pending_lps: list[TokenLogprob] = []

    def release(chunk: bytes) -> None:
        nonlocal pending_lps
        piece = Piece(chunk.decode("utf-8", errors="replace"), pending_lps)
        pending_lps = []
        result.logprobs.extend(piece.logprobs)
        text.extend(chunk)
        if on_piece is not None and (piece.text or piece.logprobs):
            on_piece(piece)

    if grammar:
        check_grammar(llama, grammar, field_name="grammar")  # a grammar llama.cpp rejects would crash the sampler
    tokens = llama.generate(
        prompt_tokens,
        top_k=sampling.top_k,
        top_p=sampling.top_p,
        min_p=sampling.min_p,
        temp=sampling.temperature,
        repeat_penalty=sampling.repeat_penalty,
        presence_penalty=sampling.presence_penalty,
        frequency_penalty=sampling.frequency_penalty,
        grammar=LlamaGrammar.from_string(grammar, verbose=False) if grammar else None,
    )
    try:
        for token in tokens:
            job.check()
            if token in limits.stop_token_ids:
                result.finish_reason = "stop"
                break
            if not limits.ignore_eos and llama_cpp.llama_vocab_is_eog(vocab, token):
                result.finish_reason = "stop"
                break
            result.completion_tokens += 1
            piece = llama.detokenize([token])
            if logprob_of is not None:
                pending_lps.append(logprob_of(token, piece))
            pending += piece
            hit = min(((pending.find(s), s) for s in stops if s in pending), default=None)
            if hit is not None:
                at, stop = hit
                release(pending[: at + len(stop)] if limits.include_stop_str_in_output else pending[:at])
                pending = b""
                result.finish_reason = "stop"
                break
            keep = _held_back(pending, stops)
            if keep < len(pending):
                release(pending[: len(pending) - keep])
                pending = pending[len(pending) - keep:]
            if result.completion_tokens >= max_tokens:
                result.finish_reason = "length"
                break
    finally:
        tokens.close()
    if pending or pending_lps:
        release(pending)
    result.text = text.decode("utf-8", errors="replace")
    return result
