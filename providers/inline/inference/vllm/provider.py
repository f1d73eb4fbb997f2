"""The ``inline::vllm`` provider: requests go to the vLLM child process's OpenAI-compatible API."""

from __future__ import annotations

import socket
from typing import Any

from providers.utils.http import HTTPSettings
from providers.utils.inference.local_models import accept_configured_llm
from providers.utils.inference.openai_compat import OpenAICompatInference
from stack.apis.models import Model
from stack.registry import ProviderContext

from ._engine import VLLMEngine
from .config import VLLMConfig


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class VLLMInference(OpenAICompatInference):
    """vLLM's own OpenAI serving (tools, JSON schema, logprobs and its sampling extras pass through)."""

    def __init__(self, config: VLLMConfig, context: ProviderContext) -> None:
        port = _free_port()
        # no retries: a request that vLLM refused would only be refused again
        super().__init__(url=f"http://127.0.0.1:{port}/v1", settings=HTTPSettings(max_retries=0), context=context,
                         default_max_tokens=config.max_tokens)
        self.engine = VLLMEngine(config, port, context.data_dir)

    def after_start(self) -> None:
        self.engine.start()

    async def health(self) -> dict[str, Any]:
        return {self.engine.config.model: self.engine.state}

    async def register_model(self, model: Model) -> Model:
        """The config's model, under any of its names (descriptor or Hugging Face id)."""
        return accept_configured_llm(model, self.engine.names, "inline::vllm")

    def context_length(self, model_id: str) -> int | None:
        return self.engine.config.max_model_len

    async def _call(self, path: str, request: Any, response_cls: Any, chunk_cls: Any) -> Any:
        self.engine.check_ready()
        return await super()._call(path, request, response_cls, chunk_cls)

    async def shutdown(self) -> None:
        await self.engine.stop()
        await super().shutdown()
