"""An OpenAI-compatible upstream that answers instantly with canned bodies (for bench/proxy.py).

usage: python bench/_instant_upstream.py PORT

A bare ASGI app on uvicorn (uvloop + httptools): POST .../chat/completions
answers a fixed chat completion, or a fixed 6-chunk SSE stream when the body
says "stream": true; POST .../embeddings answers one 16-float vector per input,
derived from the text (so equal texts embed alike). It does no work, so a benchmark measures the proxy.
"""

from __future__ import annotations

import hashlib
import json
import sys

import uvicorn

COMPLETION = json.dumps({
    "id": "chatcmpl-bench", "object": "chat.completion", "created": 1700000000, "model": "bench-upstream",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "The quick brown fox jumps over the lazy dog."},
                 "logprobs": None, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 12, "completion_tokens": 10, "total_tokens": 22},
}, separators=(",", ":")).encode()


def _chunk(delta: dict, finish: str | None = None) -> bytes:
    return b"data: " + json.dumps({
        "id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 1700000000, "model": "bench-upstream",
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
    }, separators=(",", ":")).encode() + b"\n\n"


STREAM = [_chunk({"role": "assistant"}), *[_chunk({"content": w}) for w in ("The ", "quick ", "brown ", "fox")],
          _chunk({}, "stop"), b"data: [DONE]\n\n"]
JSON_HEADERS = [(b"content-type", b"application/json"), (b"content-length", str(len(COMPLETION)).encode())]
SSE_HEADERS = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]


EMBEDDING_DIMENSION = 16


def _embeddings(body: bytes) -> bytes:
    texts = json.loads(body)["input"]
    texts = [texts] if isinstance(texts, str) else texts
    data = [{"object": "embedding", "index": i,
             "embedding": [b / 255 - 0.5 for b in hashlib.sha256(str(t).encode()).digest()[:EMBEDDING_DIMENSION]]}
            for i, t in enumerate(texts)]
    return json.dumps({"object": "list", "model": "bench-embedder", "data": data,
                       "usage": {"prompt_tokens": len(texts), "total_tokens": len(texts)}}).encode()


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    body = b""
    more = True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    if scope["path"].endswith("/embeddings"):
        answer = _embeddings(body)
        await send({"type": "http.response.start", "status": 200, "headers": [
            (b"content-type", b"application/json"), (b"content-length", str(len(answer)).encode())]})
        await send({"type": "http.response.body", "body": answer})
        return
    if b'"stream":true' in body.replace(b" ", b""):
        await send({"type": "http.response.start", "status": 200, "headers": SSE_HEADERS})
        for event in STREAM:
            await send({"type": "http.response.body", "body": event, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
        return
    await send({"type": "http.response.start", "status": 200, "headers": JSON_HEADERS})
    await send({"type": "http.response.body", "body": COMPLETION})


if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), loop="uvloop", http="httptools",
                log_level="warning", access_log=False)
