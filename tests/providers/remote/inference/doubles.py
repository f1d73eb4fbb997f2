"""Test doubles of upstream inference servers, served on a free loopback port.

``FakeOpenAIUpstream`` plays an OpenAI-compatible server and ``FakeOllama``
Ollama's native API. Each records the requests it gets and answers from a
script of behaviours (a status, a delay, a stream cut mid-way...), so tests
can check what reached the upstream and how the adapter reacts to failures.
Never a distribution's default: they exist for the tests only.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

from aiohttp import web

Behaviour = Callable[[web.Request, dict], Awaitable[web.StreamResponse]]


def chat_completion(content: str = "Hello from the test double", model: str = "upstream-model") -> dict:
    return {
        "id": "chatcmpl-double", "object": "chat.completion", "created": 1700000000, "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 4, "total_tokens": 9},
    }


def chat_chunk(content: str | None = None, finish: str | None = None, role: str | None = None) -> dict:
    delta = {k: v for k, v in (("role", role), ("content", content)) if v is not None}
    return {"id": "chatcmpl-double", "object": "chat.completion.chunk", "created": 1700000000, "model": "upstream-model",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


def sse(payload: Any) -> bytes:
    return b"data: " + (payload if isinstance(payload, bytes) else json.dumps(payload).encode()) + b"\n\n"


def sse_events(raw: bytes) -> list:
    """The ``data:`` payloads of an SSE body: JSON objects, and ``"[DONE]"`` as text."""
    out = []
    for part in raw.split(b"\n\n"):
        if part.startswith(b"data: "):
            data = part[len(b"data: "):]
            out.append(data.decode() if data == b"[DONE]" else json.loads(data))
    return out


# -- behaviours -------------------------------------------------------------------------


def answer(status: int = 200, body: Any = None, headers: dict | None = None, delay: float = 0.0) -> Behaviour:
    """Answer ``body`` (JSON, or the canned chat completion) with ``status`` after ``delay`` seconds."""

    async def behaviour(request: web.Request, sent: dict) -> web.StreamResponse:
        if delay:
            await asyncio.sleep(delay)
        payload = chat_completion() if body is None else body
        text = payload if isinstance(payload, str) else json.dumps(payload)
        return web.Response(status=status, text=text, content_type="application/json", headers=headers)

    return behaviour


def stream(events: list[bytes], *, cut: bool = False, stall: float = 0.0, content_type: str = "text/event-stream") -> Behaviour:
    """Stream ``events`` (raw bytes each); then stall ``stall`` seconds, then cut the
    connection (``cut``) or end the body properly."""

    async def behaviour(request: web.Request, sent: dict) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": content_type})
        await response.prepare(request)
        for event in events:
            await response.write(event)
        if stall:
            await asyncio.sleep(stall)
        if cut:
            await asyncio.sleep(0.05)  # let the events leave before the connection drops
            request.transport.close()
            return response
        await response.write_eof()
        return response

    return behaviour


@dataclass
class Recorded:
    path: str
    headers: dict[str, str]
    body: dict


@dataclass
class _Server:
    default: Behaviour
    script: list[Behaviour] = field(default_factory=list)
    requests: list[Recorded] = field(default_factory=list)
    connections: set = field(default_factory=set)  # client (host, port) pairs seen
    runner: web.AppRunner | None = None
    port: int = 0

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        body = json.loads(raw) if raw else {}
        self.requests.append(Recorded(request.path, dict(request.headers), body))
        self.connections.add(request.transport.get_extra_info("peername"))
        behaviour = self.script.pop(0) if self.script else self.default
        return await behaviour(request, body)

    async def start(self) -> "_Server":
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self.runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=0.1)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()

    def then(self, *behaviours: Behaviour) -> "_Server":
        """Answer the next requests with ``behaviours``, in order; the default after that."""
        self.script.extend(behaviours)
        return self


class FakeOpenAIUpstream(_Server):
    """Test double of an OpenAI-compatible server; ``url`` ends in /v1."""

    def __init__(self) -> None:
        super().__init__(default=answer())

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"


# Shapes recorded from Ollama's API documentation (docs/api.md of ollama/ollama).
OLLAMA_CHAT = {
    "model": "llama3.2", "created_at": "2023-12-12T14:13:43.416799Z",
    "message": {"role": "assistant", "content": "Hello! How are you today?"},
    "done": True, "total_duration": 5191566416, "load_duration": 2154458, "prompt_eval_count": 26,
    "prompt_eval_duration": 383809000, "eval_count": 298, "eval_duration": 4799921000,
}
OLLAMA_CHAT_TOOLS = {
    "model": "llama3.2", "created_at": "2024-07-22T20:33:28.123648Z",
    "message": {"role": "assistant", "content": "", "tool_calls": [
        {"function": {"name": "get_current_weather", "arguments": {"format": "celsius", "location": "Paris, FR"}}}]},
    "done_reason": "stop", "done": True, "total_duration": 885095291, "load_duration": 3753500,
    "prompt_eval_count": 122, "prompt_eval_duration": 328493000, "eval_count": 33, "eval_duration": 552222000,
}
OLLAMA_CHAT_STREAM = [
    {"model": "llama3.2", "created_at": "2023-08-04T08:52:19.385406455-07:00",
     "message": {"role": "assistant", "content": "The", "images": None}, "done": False},
    {"model": "llama3.2", "created_at": "2023-08-04T08:52:19.385406455-07:00",
     "message": {"role": "assistant", "content": " sky is blue"}, "done": False},
    {"model": "llama3.2", "created_at": "2023-08-04T19:22:45.499127Z", "message": {"role": "assistant", "content": ""},
     "done": True, "done_reason": "stop", "total_duration": 4883583458, "load_duration": 1334875,
     "prompt_eval_count": 26, "prompt_eval_duration": 342546000, "eval_count": 282, "eval_duration": 4535599000},
]
OLLAMA_GENERATE = {
    "model": "llama3.2", "created_at": "2023-08-04T19:22:45.499127Z", "response": "The sky is blue because of Rayleigh scattering.",
    "done": True, "done_reason": "stop", "context": [1, 2, 3], "total_duration": 5043500667, "load_duration": 5025959,
    "prompt_eval_count": 26, "prompt_eval_duration": 325953000, "eval_count": 290, "eval_duration": 4709213000,
}
OLLAMA_EMBED = {
    "model": "all-minilm",
    "embeddings": [[0.010071029, -0.0017594862, 0.05007221, 0.04692972],
                   [-0.0098027075, 0.06042469, 0.025257962, -0.006364387]],
    "total_duration": 14143917, "load_duration": 1019500, "prompt_eval_count": 8,
}
def ollama_not_found(name: str) -> dict:
    return {"error": f"model \"{name}\" not found, try pulling it first"}


def ollama_tag(name: str) -> str:
    """How Ollama reads a model name: no tag means ``:latest``."""
    return name if ":" in name.rsplit("/", 1)[-1] else f"{name}:latest"


def ndjson(objs: list[dict]) -> list[bytes]:
    return [json.dumps(o).encode() + b"\n" for o in objs]


class FakeOllama(_Server):
    """Test double of an Ollama server's native API, answering the documented shapes.

    Like the real server it knows only the models it has pulled (``tags``):
    any other name is a 404 ``model "x" not found, try pulling it first``.
    ``/api/tags`` lists the pulled models, ``/api/ps`` those used so far.
    """

    def __init__(self, tags: tuple[str, ...] = ("llama3.2:latest", "all-minilm:latest")) -> None:
        super().__init__(default=self._by_path)
        self.tags = [ollama_tag(t) for t in tags]
        self.loaded: list[str] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _listing(self, names: list[str]) -> dict:
        return {"models": [{"name": n, "model": n, "size": 2019393189, "digest": "a80c4f17acd5",
                            "details": {"format": "gguf", "family": "llama"}} for n in names]}

    async def _by_path(self, request: web.Request, sent: dict) -> web.StreamResponse:
        if request.path == "/api/version":
            return await answer(200, {"version": "0.5.7"})(request, sent)
        if request.path == "/api/tags":
            return await answer(200, self._listing(self.tags))(request, sent)
        if request.path == "/api/ps":
            return await answer(200, self._listing(self.loaded))(request, sent)
        if request.path not in ("/api/embed", "/api/generate", "/api/chat"):
            return web.Response(status=404, text="404 page not found")
        name = sent.get("model", "")
        if ollama_tag(name) not in self.tags:
            return await answer(404, ollama_not_found(name))(request, sent)
        if ollama_tag(name) not in self.loaded:
            self.loaded.append(ollama_tag(name))
        if request.path == "/api/embed":  # one vector per input, as Ollama does
            count = len(sent["input"]) if isinstance(sent.get("input"), list) else 1
            return await answer(200, {**OLLAMA_EMBED, "embeddings": OLLAMA_EMBED["embeddings"][:count]})(request, sent)
        if request.path == "/api/generate":
            if sent.get("stream", True):
                parts = [{"model": "llama3.2", "response": w, "done": False} for w in ("The", " sky")]
                return await stream(ndjson([*parts, {**OLLAMA_GENERATE, "response": ""}]),
                                    content_type="application/x-ndjson")(request, sent)
            return await answer(200, OLLAMA_GENERATE)(request, sent)
        if sent.get("stream", True):
            return await stream(ndjson(OLLAMA_CHAT_STREAM), content_type="application/x-ndjson")(request, sent)
        return await answer(200, OLLAMA_CHAT_TOOLS if sent.get("tools") else OLLAMA_CHAT)(request, sent)


# Shapes recorded from the Hugging Face Inference Endpoints API (v2) and the Hub's whoami-v2.
def hf_endpoint_description(name: str, state: str, url: str | None) -> dict:
    return {
        "name": name, "type": "protected", "accountId": None,
        "provider": {"vendor": "aws", "region": "us-east-1"},
        "compute": {"accelerator": "gpu", "instanceType": "nvidia-a10g", "instanceSize": "x1",
                    "scaling": {"minReplica": 0, "maxReplica": 1}},
        "model": {"repository": "meta-llama/Llama-3.2-3B-Instruct", "framework": "pytorch", "task": "text-generation",
                  "image": {"tgi": {"url": "ghcr.io/huggingface/text-generation-inference:2.4.0"}}},
        "status": {"createdAt": "2024-11-05T10:00:00.000Z", "updatedAt": "2024-11-05T10:05:00.000Z",
                   "state": state, "message": f"Endpoint is {state}", "readyReplica": 1 if state == "running" else 0,
                   "targetReplica": 1, "url": url},
    }


class FakeHFEndpoints(_Server):
    """Test double of the Hugging Face Inference Endpoints API, the Hub's whoami and
    the endpoint itself (TGI's Messages API), all on one port.

    ``endpoints`` maps 'namespace/name' to the endpoint's state; the endpoint's
    URL is this server, so chat requests land here too. Unknown endpoints are
    the API's 404.
    """

    def __init__(self, user: str = "alice", endpoints: dict[str, str] | None = None) -> None:
        super().__init__(default=self._by_path)
        self.user = user
        self.endpoints = endpoints if endpoints is not None else {"alice/llama-3b": "running"}

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _by_path(self, request: web.Request, sent: dict) -> web.StreamResponse:
        if request.path == "/api/whoami-v2":
            if not request.headers.get("Authorization"):
                return await answer(401, {"error": "Invalid credentials in Authorization header"})(request, sent)
            return await answer(200, {"type": "user", "id": "5f0c", "name": self.user, "fullname": "Alice"})(request, sent)
        if request.path.startswith("/v2/endpoint/"):
            name = request.path[len("/v2/endpoint/"):]
            if name not in self.endpoints:
                return await answer(404, {"error": f"Endpoint {name} not found"})(request, sent)
            state = self.endpoints[name]
            url = self.url if state in ("running", "scaledToZero") else None
            return await answer(200, hf_endpoint_description(name.split("/")[-1], state, url))(request, sent)
        return await answer()(request, sent)


# Error bodies as the services document them (used to check what a user sees).
TGI_VALIDATION_ERROR = {"error": "Input validation error: `inputs` tokens + `max_new_tokens` must be <= 4096. "
                        "Given: 4000 `inputs` tokens and 500 `max_new_tokens`", "error_type": "validation"}
TGI_OVERLOADED = {"error": "Model is overloaded", "error_type": "overloaded"}
HF_MODEL_LOADING = {"error": "Model meta-llama/Llama-3.2-3B-Instruct is currently loading", "estimated_time": 20.0}
HF_RATE_LIMIT = {"error": "Rate limit reached. You reached free usage limit (reset hourly). "
                 "Please subscribe to a plan at https://huggingface.co/pricing to use the API at this rate"}
HF_BAD_TOKEN = {"error": "Invalid credentials in Authorization header"}
SAMBANOVA_RATE_LIMIT = {"error": {"code": None, "message": "Rate limit exceeded", "param": None,
                                  "type": "rate_limit_exceeded"}}
SAMBANOVA_BAD_MODEL = {"error": {"code": "model_not_found", "message": "Model not found", "param": "model",
                                 "type": "invalid_request_error"}}
NVIDIA_NIM_ERROR = {"object": "error", "message": "This model's maximum context length is 8192 tokens.",
                    "type": "BadRequestError", "param": None, "code": 400}
NVIDIA_CATALOG_422 = {"type": "urn:inference-service:problem-details:unprocessable-entity", "title": "Unprocessable Entity",
                      "status": 422, "detail": "body -> messages -> 0 -> content: field required"}
NVIDIA_CATALOG_429 = {"status": 429, "title": "Too Many Requests"}
CEREBRAS_RATE_LIMIT = {"message": "Requests per minute limit exceeded - too many requests sent.",
                       "type": "too_many_requests_error", "param": "quota", "code": "request_quota_exceeded"}
CEREBRAS_BAD_KEY = {"message": "Wrong API Key", "type": "invalid_request_error", "param": "api_key",
                    "code": "wrong_api_key"}
