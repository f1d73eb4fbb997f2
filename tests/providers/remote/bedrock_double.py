"""``FakeBedrock``: a test double of Amazon Bedrock's runtime API, for boto3 to talk to
through ``endpoint_url`` (or ``AWS_ENDPOINT_URL_BEDROCK_RUNTIME``).

It serves the documented REST shapes of Converse, ConverseStream, InvokeModel,
InvokeModelWithResponseStream and ApplyGuardrail, streams in AWS's binary
event-stream framing (prelude, headers, payload, both CRC32s, so botocore's
parser checks them), and answers errors as Bedrock does (status, the
``x-amzn-ErrorType`` header, a JSON ``message``). Every request is recorded
(operation, model or guardrail, headers, JSON body) so tests assert what the
provider sent. Scripted answers (``then``) replace the canned ones in order.
Never run against the live service: the shapes come from the API reference.
"""

from __future__ import annotations

import base64
import json
import struct
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

Behaviour = Callable[[web.Request, "Recorded"], Awaitable[web.StreamResponse]]
EVENT_STREAM = "application/vnd.amazon.eventstream"


# -- the event-stream framing ---------------------------------------------------------------


def frame(headers: dict[str, str], payload: bytes) -> bytes:
    """One event-stream message: total and headers length, prelude CRC, string headers, payload, message CRC."""
    encoded = b"".join(
        len(name.encode()).to_bytes(1, "big") + name.encode() + b"\x07" + len(value.encode()).to_bytes(2, "big")
        + value.encode()
        for name, value in headers.items())
    prelude = struct.pack(">II", 12 + len(encoded) + len(payload) + 4, len(encoded))
    message = prelude + struct.pack(">I", zlib.crc32(prelude)) + encoded + payload
    return message + struct.pack(">I", zlib.crc32(message))


def event(name: str, body: dict[str, Any]) -> bytes:
    return frame({":event-type": name, ":content-type": "application/json", ":message-type": "event"},
                 json.dumps(body).encode())


def exception_event(kind: str, message: str) -> bytes:
    """An error inside a stream, e.g. ``exception_event("throttlingException", "Too many tokens")``."""
    return frame({":exception-type": kind, ":content-type": "application/json", ":message-type": "exception"},
                 json.dumps({"message": message}).encode())


# -- canned answers (the API reference's shapes) ----------------------------------------------


def converse_answer(text: str = "Hello from the test double", stop: str = "end_turn",
                    content: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"output": {"message": {"role": "assistant", "content": content or [{"text": text}]}},
            "stopReason": stop, "usage": {"inputTokens": 12, "outputTokens": 6, "totalTokens": 18},
            "metrics": {"latencyMs": 211}}


def converse_events(*pieces: str, stop: str = "end_turn") -> list[bytes]:
    return ([event("messageStart", {"role": "assistant"})]
            + [event("contentBlockDelta", {"delta": {"text": p}, "contentBlockIndex": 0}) for p in pieces]
            + [event("contentBlockStop", {"contentBlockIndex": 0}), event("messageStop", {"stopReason": stop}),
               event("metadata", {"usage": {"inputTokens": 12, "outputTokens": 6, "totalTokens": 18},
                                  "metrics": {"latencyMs": 211}})])


def tool_use_events(tool_use_id: str, name: str, *input_pieces: str) -> list[bytes]:
    return [event("messageStart", {"role": "assistant"}),
            event("contentBlockStart", {"start": {"toolUse": {"toolUseId": tool_use_id, "name": name}},
                                        "contentBlockIndex": 0}),
            *[event("contentBlockDelta", {"delta": {"toolUse": {"input": p}}, "contentBlockIndex": 0})
              for p in input_pieces],
            event("contentBlockStop", {"contentBlockIndex": 0}), event("messageStop", {"stopReason": "tool_use"}),
            event("metadata", {"usage": {"inputTokens": 30, "outputTokens": 9, "totalTokens": 39},
                               "metrics": {"latencyMs": 300}})]


def llama_answer(generation: str = "Paris.", stop: str = "stop") -> dict[str, Any]:
    return {"generation": generation, "prompt_token_count": 7, "generation_token_count": 3, "stop_reason": stop}


def llama_chunks(*pieces: str) -> list[bytes]:
    """InvokeModelWithResponseStream for a Meta Llama model: base64 JSON in each ``chunk``."""
    out = []
    for i, piece in enumerate(pieces):
        last = i == len(pieces) - 1
        part: dict[str, Any] = {"generation": piece, "prompt_token_count": 7 if i == 0 else None,
                                "generation_token_count": i + 1, "stop_reason": "stop" if last else None}
        if last:
            part["amazon-bedrock-invocationMetrics"] = {"inputTokenCount": 7, "outputTokenCount": len(pieces),
                                                         "invocationLatency": 120, "firstByteLatency": 40}
        out.append(event("chunk", {"bytes": base64.b64encode(json.dumps(part).encode()).decode()}))
    return out


def titan_embedding(dimensions: int = 4) -> dict[str, Any]:
    return {"embedding": [0.25 * (i + 1) for i in range(dimensions)], "inputTextTokenCount": 3}


def guardrail_answer(intervened: bool) -> dict[str, Any]:
    if not intervened:
        return {"usage": {"topicPolicyUnits": 1, "contentPolicyUnits": 1, "wordPolicyUnits": 1,
                          "sensitiveInformationPolicyUnits": 1, "sensitiveInformationPolicyFreeUnits": 0,
                          "contextualGroundingPolicyUnits": 0},
                "action": "NONE", "outputs": [], "assessments": [{}]}
    return {"usage": {"topicPolicyUnits": 1, "contentPolicyUnits": 1, "wordPolicyUnits": 1,
                      "sensitiveInformationPolicyUnits": 1, "sensitiveInformationPolicyFreeUnits": 0,
                      "contextualGroundingPolicyUnits": 0},
            "action": "GUARDRAIL_INTERVENED", "actionReason": "Guardrail blocked.",
            "outputs": [{"text": "Sorry, I can't help with that."}],
            "assessments": [{"topicPolicy": {"topics": [{"name": "Weapons", "type": "DENY", "action": "BLOCKED"}]},
                             "contentPolicy": {"filters": [{"type": "VIOLENCE", "confidence": "HIGH",
                                                            "filterStrength": "HIGH", "action": "BLOCKED"}]}}]}


# -- behaviours -----------------------------------------------------------------------------


def answer(body: dict[str, Any]) -> Behaviour:
    async def behaviour(request: web.Request, recorded: Recorded) -> web.StreamResponse:
        return web.json_response(body, headers={"x-amzn-RequestId": "double-request"})

    return behaviour


def stream(frames: list[bytes], *, cut: bool = False) -> Behaviour:
    """Stream ``frames``; ``cut``: drop the connection after them instead of ending the body."""

    async def behaviour(request: web.Request, recorded: Recorded) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": EVENT_STREAM, "x-amzn-RequestId": "double-request"})
        await response.prepare(request)
        for piece in frames:
            await response.write(piece)
        if cut:
            request.transport.close()
            return response
        await response.write_eof()
        return response

    return behaviour


def error(code: str, status: int, message: str) -> Behaviour:
    """Bedrock's error answer, e.g. ``error("ThrottlingException", 429, "Too many requests")``."""

    async def behaviour(request: web.Request, recorded: Recorded) -> web.StreamResponse:
        return web.json_response({"message": message}, status=status,
                                 headers={"x-amzn-ErrorType": f"{code}:http://internal.amazon.com/coral/com.amazon.bedrock/",
                                          "x-amzn-RequestId": "double-request"})

    return behaviour


# -- the server -----------------------------------------------------------------------------


@dataclass
class Recorded:
    operation: str  # Converse, ConverseStream, InvokeModel, InvokeModelWithResponseStream, ApplyGuardrail
    target: str  # the model id, or "guardrail-id@version"
    headers: dict[str, str]
    body: dict[str, Any]

    @property
    def access_key_id(self) -> str:
        """The key id of the request's SigV4 signature."""
        return self.headers.get("Authorization", "").split("Credential=")[-1].split("/")[0]


_ROUTES = (
    ("/model/{target}/converse", "Converse"),
    ("/model/{target}/converse-stream", "ConverseStream"),
    ("/model/{target}/invoke", "InvokeModel"),
    ("/model/{target}/invoke-with-response-stream", "InvokeModelWithResponseStream"),
    ("/guardrail/{target}/version/{version}/apply", "ApplyGuardrail"),
)


@dataclass
class FakeBedrock:
    """A Bedrock runtime on a free loopback port; ``url`` is the endpoint_url to give boto3."""

    script: list[Behaviour] = field(default_factory=list)
    requests: list[Recorded] = field(default_factory=list)
    runner: web.AppRunner | None = None
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def then(self, *behaviours: Behaviour) -> FakeBedrock:
        self.script.extend(behaviours)
        return self

    def of(self, operation: str) -> list[Recorded]:
        return [r for r in self.requests if r.operation == operation]

    async def start(self) -> FakeBedrock:
        app = web.Application()
        for path, operation in _ROUTES:
            app.router.add_post(path, self._handler(operation))
        self.runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=0.1)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", self.port)  # a restart keeps the port
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()

    def _handler(self, operation: str) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def handle(request: web.Request) -> web.StreamResponse:
            raw = await request.read()
            target = request.match_info["target"]
            if "version" in request.match_info:
                target = f"{target}@{request.match_info['version']}"
            recorded = Recorded(operation, target, dict(request.headers), json.loads(raw) if raw else {})
            self.requests.append(recorded)
            behaviour = self.script.pop(0) if self.script else self._canned(recorded)
            return await behaviour(request, recorded)

        return handle

    def _canned(self, recorded: Recorded) -> Behaviour:
        if recorded.operation == "Converse":
            return answer(converse_answer())
        if recorded.operation == "ConverseStream":
            return stream(converse_events("Hello", " from the test double"))
        if recorded.operation == "InvokeModel":
            return answer(titan_embedding() if "inputText" in recorded.body else llama_answer())
        if recorded.operation == "InvokeModelWithResponseStream":
            return stream(llama_chunks("Par", "is."))
        return answer(guardrail_answer("bomb" in json.dumps(recorded.body)))


def aws_env(url: str) -> dict[str, str]:
    """Environment for boto3 to reach ``url`` with test keys and nothing from ~/.aws or instance metadata."""
    return {"AWS_ENDPOINT_URL_BEDROCK_RUNTIME": url, "AWS_DEFAULT_REGION": "us-west-2",
            "AWS_ACCESS_KEY_ID": "AKIDTESTDOUBLE", "AWS_SECRET_ACCESS_KEY": "test-secret",
            "AWS_CONFIG_FILE": "/nonexistent/aws-config", "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/aws-credentials",
            "AWS_EC2_METADATA_DISABLED": "true", "AWS_MAX_ATTEMPTS": "1"}
