"""A test double of an OpenAI-compatible inference server (vLLM's API), for
end-to-end tests of distributions whose state, not whose model, is under test.

It answers at once (``[slow]`` in the last message: after ``SLOW_SECONDS``),
chat streamed or not, and embeddings that are a bag of hashed words (texts
that share words are near), so vector queries give meaningful order. Never a
distribution's default.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from contextlib import contextmanager

from tests.support import QuietHandler, serving

CHAT_MODEL, EMBEDDING_MODEL, DIMENSION = "double-chat", "double-embed", 16
SLOW_SECONDS = 1.5
ANSWER = "Hello from the upstream double"


def embed(text: str) -> list[float]:
    vector = [0.0] * DIMENSION
    for word in text.lower().split():
        vector[int(hashlib.sha256(word.strip(".,?!").encode()).hexdigest(), 16) % DIMENSION] += 1.0
    norm = math.sqrt(sum(v * v for v in vector))
    return [v / norm for v in vector] if norm else [1.0] + [0.0] * (DIMENSION - 1)


def _last_text(messages: list[dict]) -> str:
    content = messages[-1].get("content") if messages else ""
    if isinstance(content, list):
        return " ".join(part.get("text", "") for part in content if isinstance(part, dict))
    return content or ""


class UpstreamDouble(QuietHandler):
    def reply(self, body: bytes, content_type: str) -> None:
        try:
            super().reply(body, content_type)
        except (BrokenPipeError, ConnectionResetError):  # the caller hung up (a killed server): as an upstream would
            pass

    def _json(self) -> dict:
        return json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")

    def do_GET(self) -> None:
        models = [{"id": m, "object": "model", "created": 0, "owned_by": "double"} for m in (CHAT_MODEL, EMBEDDING_MODEL)]
        self.reply(json.dumps({"object": "list", "data": models}).encode(), "application/json")

    def do_POST(self) -> None:
        body = self._json()
        if self.path.endswith("/embeddings"):
            texts = body["input"] if isinstance(body["input"], list) else [body["input"]]
            data = [{"object": "embedding", "index": i, "embedding": embed(t)} for i, t in enumerate(texts)]
            usage = {"prompt_tokens": len(texts), "total_tokens": len(texts)}
            self.reply(json.dumps({"object": "list", "model": body["model"], "data": data, "usage": usage}).encode(),
                       "application/json")
            return
        if "[slow]" in _last_text(body.get("messages", [])):
            time.sleep(SLOW_SECONDS)
        usage = {"prompt_tokens": 5, "completion_tokens": 6, "total_tokens": 11}
        head = {"id": "chatcmpl-double", "created": 1700000000, "model": body.get("model", CHAT_MODEL)}
        if not body.get("stream"):
            choice = {"index": 0, "message": {"role": "assistant", "content": ANSWER}, "finish_reason": "stop"}
            self.reply(json.dumps({**head, "object": "chat.completion", "choices": [choice], "usage": usage}).encode(),
                       "application/json")
            return
        chunks = [{"index": 0, "delta": {"role": "assistant", "content": ANSWER}, "finish_reason": None},
                  {"index": 0, "delta": {}, "finish_reason": "stop"}]
        events = [{**head, "object": "chat.completion.chunk", "choices": [c]} for c in chunks]
        events[-1]["usage"] = usage
        self.reply(b"".join(b"data: " + json.dumps(e).encode() + b"\n\n" for e in events) + b"data: [DONE]\n\n",
                   "text/event-stream")


@contextmanager
def upstream_double():
    """The double on a free loopback port; yields its base URL (ending in /v1)."""
    with serving(UpstreamDouble) as port:
        yield f"http://127.0.0.1:{port}/v1"


def on_double(distribution: str, url: str) -> dict:
    """``distribution``'s run config with its inference served by the double at ``url``
    (post-training, which trains local weights, left out)."""
    import yaml

    from tests.support import REPO

    config = yaml.safe_load((REPO / "distributions" / distribution / "run.yaml").read_text())
    config["providers"]["inference"] = [
        {"provider_id": "upstream", "provider_type": "remote::vllm", "config": {"url": url}}]
    config["models"] = [
        {"model_id": CHAT_MODEL, "provider_id": "upstream", "model_type": "llm"},
        {"model_id": EMBEDDING_MODEL, "provider_id": "upstream", "model_type": "embedding",
         "metadata": {"embedding_dimension": DIMENSION}},
    ]
    config["apis"].remove("post_training")
    del config["providers"]["post_training"]
    for provider in config["providers"].get("synthetic_data_generation", []):
        provider["config"]["default_model"] = CHAT_MODEL
    return config


if __name__ == "__main__":  # python -m tests.e2e.upstream_double PORT: for bench/replicas.py
    import http.server
    import sys

    http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), UpstreamDouble).serve_forever()
