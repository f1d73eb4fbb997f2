"""The TGI and Hugging Face adapters: TGI's Messages API is OpenAI's chat API, so each is the
OpenAI-compatible adapter plus what the service lacks or needs first."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from providers.utils.http import UpstreamClient
from providers.utils.inference.aliased import AliasedInference
from stack.apis.openai import OpenAIEmbeddingsRequest, OpenAIEmbeddingsResponse
from stack.errors import NotSupportedError, ServiceUnavailableError, StackError, UpstreamError

#: Inference Endpoint states in which its URL answers (a scaled-to-zero one wakes up on a request)
_SERVING = ("running", "scaledToZero")


class TGIInference(AliasedInference):
    """A TGI server: chat and completions, no embeddings (those are TEI's)."""

    async def openai_embeddings(self, request: OpenAIEmbeddingsRequest) -> OpenAIEmbeddingsResponse:
        raise NotSupportedError(
            f"{self.provider_type} serves text generation only; embed with inline::sentence-transformers "
            f"(model {request.model!r})")


class HFServerlessInference(TGIInference):
    """The serverless Inference API, whose URL names its one model."""

    def serves(self, config: Any) -> str | None:
        return config.huggingface_repo


class HFEndpointInference(TGIInference):
    """An Inference Endpoint: its URL is looked up by name (once, at the first request).

    ``self.client`` talks to the Endpoints API until the lookup, then to the endpoint.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._api_headers = dict(self.client.default_headers)
        self._settings = self.client.settings
        self._resolved = False
        self._lock = asyncio.Lock()

    async def _call(self, path: str, request: Any, response_cls: Any, chunk_cls: Any) -> Any:
        await self.resolve()
        return await super()._call(path, request, response_cls, chunk_cls)

    async def health(self) -> dict[str, Any]:
        try:
            await self.resolve()
        except StackError as exc:  # health reports, it does not fail
            return {"status": "unreachable", "url": self.config.endpoints_api_url, "error": str(exc)}
        return await super().health()

    async def resolve(self) -> None:
        """Find the endpoint's URL; an endpoint that is not serving is a 503 naming its state."""
        if self._resolved:
            return
        async with self._lock:
            if self._resolved:
                return
            name = self.config.endpoint_name
            if "/" not in name:
                name = f"{await self._user_name()}/{name}"
            raw = await self.client.request_bytes("GET", f"/v2/endpoint/{name}", what=f"Inference Endpoint {name!r}")
            url, state = _endpoint_url(raw, f"{self.client.base_url}/v2/endpoint/{name}")
            if state not in _SERVING or not url:
                raise ServiceUnavailableError(
                    f"Hugging Face Inference Endpoint {name!r} is {state!r}, not running"
                    + ("; resume it in the Hugging Face console" if state == "paused" else ""), retry_after=30)
            endpoint = UpstreamClient(f"{url.rstrip('/')}/v1", self._settings, name=self.client.name,
                                      headers=self._api_headers)
            await endpoint.start()
            api, self.client = self.client, endpoint
            self._resolved = True
            await api.close()

    async def _user_name(self) -> str:
        """The namespace of an endpoint named without one: the token's user (the Hub's whoami)."""
        hub = UpstreamClient(self.config.hub_url, self._settings, name=self.client.name, headers=self._api_headers)
        await hub.start()
        try:
            raw = await hub.request_bytes("GET", "/api/whoami-v2", what="the user of api_token")
        finally:
            await hub.close()
        try:
            return str(json.loads(raw)["name"])
        except (ValueError, KeyError, TypeError):
            raise UpstreamError(f"upstream {self.config.hub_url}/api/whoami-v2 sent an unexpected answer: "
                                f"{raw[:200]!r}") from None


def _endpoint_url(raw: bytes, where: str) -> tuple[str | None, str]:
    try:
        status = json.loads(raw)["status"]
        return status.get("url"), str(status["state"])
    except (ValueError, KeyError, TypeError, AttributeError):
        raise UpstreamError(f"upstream {where} sent an unexpected endpoint description: {raw[:200]!r}") from None
