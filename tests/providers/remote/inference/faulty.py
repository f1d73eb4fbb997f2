"""A fault-injecting test double of an inference upstream, on a loopback port.

``FaultyUpstream`` answers chat requests the way an OpenAI-compatible server
does (``dialect="openai"``: JSON, SSE streams ending in ``[DONE]``) or the way
Ollama does (``dialect="ollama"``: /api/chat, NDJSON streams). It also answers
the Hugging Face Inference Endpoints description of one endpoint whose URL is
itself, and Ollama's /api/tags, so every remote provider can be pointed at it.

Set ``fault`` to one of ``FAULTS`` and every chat request misbehaves that way
until it is set back to None; ``stop()`` / ``restart()`` take the whole server
down and bring it back on the same port. Never a distribution's default: it
exists for the tests only.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp import web

#: what a chat request can be made to meet
FAULTS = (
    "slow",      # nothing for longer than the adapter's read_timeout (before the status line)
    "5xx",       # 503 with an error body naming the cause
    "cut",       # part of the body, then the connection drops
    "stall",     # part of a stream, then silence past read_timeout
    "garbage",   # 200 with a body that is not JSON (an HTML error page of a proxy)
    "shape",     # 200 with JSON of the wrong shape
    "empty",     # 200 with no answer in it: no choices, no vectors, a stream without events
)

OVERLOADED = "engine overloaded by the fault double"
SLOW_SECONDS = 2.0
TEXT = ("Hel", "lo")


def _openai_chunk(content: str | None, finish: str | None = None, role: str | None = None) -> dict:
    delta = {k: v for k, v in (("role", role), ("content", content)) if v is not None}
    return {"id": "chatcmpl-faulty", "object": "chat.completion.chunk", "created": 1700000000,
            "model": "upstream-model", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


def _ollama_chunk(content: str, done: bool = False) -> dict:
    out: dict[str, Any] = {"model": "llama3.2", "created_at": "2024-01-01T00:00:00Z",
                           "message": {"role": "assistant", "content": content}, "done": done}
    if done:
        out.update(done_reason="stop", prompt_eval_count=5, eval_count=2)
    return out


class FaultyUpstream:
    """See the module docstring. ``requests`` counts the chat requests that arrived."""

    def __init__(self, dialect: str = "openai") -> None:
        assert dialect in ("openai", "ollama")
        self.dialect = dialect
        self.fault: str | None = None
        self.requests = 0
        self.port = 0
        self._runner: web.AppRunner | None = None

    @property
    def host(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- life cycle ------------------------------------------------------------------

    async def start(self) -> FaultyUpstream:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=0.1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port, reuse_address=True)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        """The upstream is down: connections are refused until ``restart``."""
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    async def restart(self) -> None:
        await self.start()

    # -- answers ---------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        body = json.loads(raw) if raw else {}
        path = request.path
        if path.startswith("/v2/endpoint/"):  # the Inference Endpoints API: the endpoint is this server
            return web.json_response({"name": path.rsplit("/", 1)[-1], "status": {
                "state": "running", "url": self.host, "readyReplica": 1, "targetReplica": 1}})
        if path == "/api/tags":
            return web.json_response({"models": [{"name": "llama3.2:latest", "model": "llama3.2:latest"}]})
        if path.endswith(("/embeddings", "/api/embed")):
            self.requests += 1
            return self._embeddings(body)
        if not path.endswith(("/chat/completions", "/api/chat")):
            return web.json_response({"error": {"message": f"no route {path}"}}, status=404)
        self.requests += 1
        stream = bool(body.get("stream", self.dialect == "ollama"))
        return await self._answer(request, stream)

    def _embeddings(self, body: dict) -> web.Response:
        texts = body.get("input")
        count = 0 if self.fault == "empty" else len(texts) if isinstance(texts, list) else 1
        vectors = [[0.5, float(i)] for i in range(count)]
        if self.dialect == "ollama":
            return web.json_response({"model": body.get("model"), "embeddings": vectors})
        return web.json_response({"object": "list", "model": body.get("model"), "usage": {"prompt_tokens": 1, "total_tokens": 1},
                                  "data": [{"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(vectors)]})

    def _events(self) -> list[bytes]:
        """A whole stream of this dialect, framed."""
        if self.dialect == "ollama":
            objs = [_ollama_chunk(t) for t in TEXT] + [_ollama_chunk("", done=True)]
            return [json.dumps(o).encode() + b"\n" for o in objs]
        objs = [_openai_chunk(TEXT[0], role="assistant"), _openai_chunk(TEXT[1]), _openai_chunk(None, "stop")]
        return [b"data: " + json.dumps(o).encode() + b"\n\n" for o in objs] + [b"data: [DONE]\n\n"]

    def _whole(self) -> dict:
        text = "".join(TEXT)
        if self.dialect == "ollama":
            return {**_ollama_chunk(text, done=True)}
        return {"id": "chatcmpl-faulty", "object": "chat.completion", "created": 1700000000, "model": "upstream-model",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}}

    def _empty(self) -> bytes:
        if self.dialect == "ollama":
            return b"{}"
        return json.dumps({"id": "x", "object": "chat.completion", "created": 1, "model": "upstream-model",
                           "choices": []}).encode()

    def _wrong_shape(self) -> bytes:
        if self.dialect == "ollama":
            return json.dumps({"model": "llama3.2", "response": 42, "done": "maybe"}).encode()
        return json.dumps({"id": "x", "object": "chat.completion", "choices": [{"index": 0, "text": 42}]}).encode()

    async def _answer(self, request: web.Request, stream: bool) -> web.StreamResponse:
        fault = self.fault
        if fault == "slow":
            await asyncio.sleep(SLOW_SECONDS)
        if fault == "5xx":
            error = {"error": OVERLOADED} if self.dialect == "ollama" else {"error": {"message": OVERLOADED}}
            return web.json_response(error, status=503)
        kind = ("application/x-ndjson" if self.dialect == "ollama" else "text/event-stream") if stream \
            else "application/json"
        if fault == "garbage":
            return web.Response(status=200, text="<html><body>502 Bad Gateway</body></html>", content_type="text/html")
        if not stream:
            payload = {"shape": self._wrong_shape, "empty": self._empty}.get(fault, lambda: json.dumps(self._whole()).encode())()
            if fault == "cut":  # promise the whole body, send half of it
                response = web.StreamResponse(headers={"Content-Type": kind, "Content-Length": str(len(payload))})
                await response.prepare(request)
                await response.write(payload[: len(payload) // 2])
                await asyncio.sleep(0.05)
                request.transport.close()
                return response
            return web.Response(status=200, body=payload, content_type=kind)
        response = web.StreamResponse(headers={"Content-Type": kind})
        await response.prepare(request)
        events = self._events()
        if fault in ("cut", "stall"):
            events = events[:1]
        elif fault == "empty":
            events = []
        elif fault == "shape":
            frame = b"%s\n" if self.dialect == "ollama" else b"data: %s\n\n"
            events = events[:1] + [frame % self._wrong_shape()]
        for event in events:
            await response.write(event)
        if fault == "stall":
            await asyncio.sleep(SLOW_SECONDS)
        if fault == "cut":
            await asyncio.sleep(0.05)  # let the first event leave before the connection drops
            request.transport.close()
            return response
        await response.write_eof()
        return response
