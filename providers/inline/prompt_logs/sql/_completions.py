"""Chat completions polystack serves, written as prompt logs (``log_chat_completions``).

The provider receives the inference router (an optional dependency) and
replaces its ``openai_chat_completion`` (``POST /v1/chat/completions`` and the
``/v1/openai/v1`` alias) on that one object with a wrapper that answers as
before, then logs the call to the prompt ``<path_prefix><model>``: messages,
output, finish reason, tokens, latency and cost. Streams are logged when they
end. A log that cannot be written is reported in the server log and never
fails the completion.
"""

from __future__ import annotations

import collections.abc
import logging
import time
from typing import Any, AsyncIterator

from stack.apis.prompt_logs import HumanloopPromptLogRequest

from ._store import now
from .config import ChatCompletionLogs

log = logging.getLogger(__name__)
KERNEL_FIELDS = ("temperature", "top_p", "max_tokens", "stop", "tools", "presence_penalty", "frequency_penalty",
                 "seed", "response_format")


def wrap_router(router: Any, write: Any, config: ChatCompletionLogs) -> None:
    """Make ``router.openai_chat_completion`` log every completion through ``write``
    (an ``async (HumanloopPromptLogRequest) -> ...``)."""
    served = router.openai_chat_completion

    async def openai_chat_completion(request: Any) -> Any:
        call = _Call(request, config)
        result = await served(request)
        if isinstance(result, collections.abc.AsyncIterator):
            return _logged_stream(result, call, write)
        choice = result.choices[0] if result.choices else None
        if choice is not None:
            call.output, call.finish_reason = choice.message.content, choice.finish_reason
            call.tool_calls = [t.model_dump(mode="json") for t in choice.message.tool_calls] or None
        call.usage = result.usage
        await call.write(write)
        return result

    router.openai_chat_completion = openai_chat_completion


async def _logged_stream(chunks: AsyncIterator[Any], call: _Call, write: Any) -> AsyncIterator[Any]:
    parts: list[str] = []
    try:
        async for chunk in chunks:
            for choice in chunk.choices:
                if choice.index == 0:
                    parts.append(choice.delta.content or "")
                    call.finish_reason = choice.finish_reason or call.finish_reason
            call.usage = chunk.usage or call.usage
            yield chunk
    finally:  # also when the client went away: what was generated is logged
        call.output = "".join(parts)
        await call.write(write)


class _Call:
    """What one completion's log needs, filled in as its answer arrives."""

    def __init__(self, request: Any, config: ChatCompletionLogs) -> None:
        self.request, self.config = request, config
        self.started, self.start_time = time.monotonic(), now()
        self.output: str | None = None
        self.finish_reason: str | None = None
        self.tool_calls: list[dict] | None = None
        self.usage: Any = None

    async def write(self, write: Any) -> None:
        request, price = self.request, self.config.prices.get(self.request.model)
        prompt_tokens = self.usage.prompt_tokens if self.usage is not None else None
        output_tokens = self.usage.completion_tokens if self.usage is not None else None
        sent = request.model_dump(mode="json", exclude_none=True)
        kernel = {"model": request.model, "endpoint": "chat",
                  **{k: sent[k] for k in KERNEL_FIELDS if sent.get(k) not in (None, [], {})}}
        try:
            await write(HumanloopPromptLogRequest(
                path=f"{self.config.path_prefix}{request.model}", prompt=kernel, messages=sent["messages"],
                output=self.output, finish_reason=self.finish_reason,
                output_message={"role": "assistant", "content": self.output, "tool_calls": self.tool_calls},
                prompt_tokens=prompt_tokens, output_tokens=output_tokens,
                prompt_cost=price.input * prompt_tokens / 1e6 if price and prompt_tokens is not None else None,
                output_cost=price.output * output_tokens / 1e6 if price and output_tokens is not None else None,
                provider_latency=time.monotonic() - self.started, start_time=self.start_time, end_time=now(),
                source="polystack", user=sent.get("user"),
            ))
        except Exception:  # the answer went out; a lost log must not turn it into an error
            log.exception("could not write the prompt log of a chat completion for model %r", request.model)
