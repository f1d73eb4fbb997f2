"""One thread per model: it loads the model, then runs micro-batches.

A request splits its texts into chunks of at most ``max_batch_size`` and puts
each chunk on the model's queue with a future of its event loop. The thread
takes the oldest chunk, adds whatever else arrives until ``batch_wait_ms``
after that chunk was queued or until the batch is full, drops chunks whose
request was cancelled, runs one encode call and hands every chunk its slice
back with ``loop.call_soon_threadsafe``. A chunk that would overflow the batch
opens the next one. Nothing here blocks an event loop, and a request may come
from any loop (the thread does not hold one).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import queue
import threading
import time
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from providers.utils.inference.load_lock import MODEL_LOAD_LOCK
from stack.errors import BadRequestError, StackError

from .config import EmbeddingModelConfig, ModelUnavailable

log = logging.getLogger(__name__)

_STOP = object()


@dataclass(eq=False)
class _Chunk:
    texts: list[str]
    future: asyncio.Future
    loop: asyncio.AbstractEventLoop
    queued: float = field(default_factory=time.monotonic)
    dropped: bool = False


@dataclass
class WorkerStats:
    """Counters of one model's batcher, reported by ``health()``."""

    requests: int = 0
    texts: int = 0
    tokens: int = 0
    encode_calls: int = 0
    forward_passes: int = 0
    dropped_texts: int = 0
    largest_batch: int = 0
    encode_seconds: float = 0.0


def _mark_dropped(chunk: _Chunk, future: asyncio.Future) -> None:
    if future.cancelled():
        chunk.dropped = True


def _settle(future: asyncio.Future, result: Any, error: BaseException | None) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


class ModelWorker:
    """The thread, queue and state of one configured model."""

    def __init__(
        self, model_id: str, source: EmbeddingModelConfig, *, device: str, max_batch_size: int, batch_wait_ms: float
    ) -> None:
        self.model_id = model_id
        self.source = source
        self.device_setting = device
        self.max_batch_size = max_batch_size
        self.batch_wait = batch_wait_ms / 1000
        self.state = "not_loaded"  # -> loading -> ready | error; -> stopped
        self.error: str | None = None
        self.model: Any = None  # _model.LoadedModel once ready
        self.load_seconds: float | None = None
        self.stats = WorkerStats()
        self._loaded: concurrent.futures.Future = concurrent.futures.Future()
        self._loaded.set_running_or_notify_cancel()  # a waiter that is cancelled cannot cancel the load
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._closed = False

    # -- event-loop side ---------------------------------------------------------

    def start(self) -> None:
        """Begin loading in the model's thread (once)."""
        with self._lock:
            if self._thread is not None or self._closed:
                return
            self.state = "loading"
            self._thread = threading.Thread(
                target=self._run, name=f"sentence-transformers:{self.model_id}", daemon=True
            )
            self._thread.start()

    async def ready(self) -> Any:
        """The loaded model, once it is; BadRequestError naming the model when it cannot load."""
        self._check_open()
        self.start()
        if not self._loaded.done():
            await asyncio.wrap_future(self._loaded)
        if self.model is None:
            raise BadRequestError(f"model {self.model_id!r} is not available: {self.error}", field="model")
        return self.model

    async def embed(self, texts: list[str]) -> tuple[Any, Any]:
        """(float32 vectors, token counts) of ``texts``, in order."""
        import numpy as np

        await self.ready()
        self._check_open()
        self.stats.requests += 1
        size = self.max_batch_size
        if len(texts) <= size:
            vectors, tokens = await self._submit(texts)
            return vectors, tokens
        # sorted by length so that each chunk pads little; put back in order below
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        ordered = [texts[i] for i in order]
        parts = await asyncio.gather(*(self._submit(ordered[i:i + size]) for i in range(0, len(ordered), size)))
        vectors = np.empty((len(texts), parts[0][0].shape[1]), dtype=np.float32)
        tokens = np.empty(len(texts), dtype=np.int64)
        vectors[order] = np.concatenate([p[0] for p in parts])
        tokens[order] = np.concatenate([p[1] for p in parts])
        return vectors, tokens

    def _submit(self, texts: list[str]) -> asyncio.Future:
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        chunk = _Chunk(texts, future, loop)
        future.add_done_callback(partial(_mark_dropped, chunk))
        self._queue.put(chunk)
        return future

    def _check_open(self) -> None:
        if self._closed:
            raise StackError(f"model {self.model_id!r}: the provider is shutting down")

    async def close(self, timeout: float = 30.0) -> None:
        """Stop the thread after the batch it is running; queued requests fail."""
        self._closed = True
        thread = self._thread
        if thread is not None:
            self._queue.put(_STOP)
            await asyncio.to_thread(thread.join, timeout)
            if thread.is_alive():
                log.warning("model %r: its thread did not stop within %.0f s", self.model_id, timeout)
        self.state = "stopped"

    def state_text(self) -> str:
        if self.state == "error":
            return f"error: {self.error}"
        return self.state.replace("_", " ")

    def health(self) -> dict[str, Any]:
        report: dict[str, Any] = {"state": self.state, "source": self.source.describe()}
        if self.model is not None:
            report.update(device=self.model.device, dimension=self.model.dimension, load_seconds=self.load_seconds)
        if self.error is not None:
            report["error"] = self.error
        report["stats"] = {**vars(self.stats), "encode_seconds": round(self.stats.encode_seconds, 3)}
        return report

    # -- the model's thread --------------------------------------------------------

    def _run(self) -> None:
        started = time.perf_counter()
        try:
            with MODEL_LOAD_LOCK:  # torch's first import and the build of the model (load_lock.py says why)
                from ._model import load

                model = load(self.source, self.device_setting)
        except ModelUnavailable as exc:
            self.error = str(exc)
            self.state = "error"
            log.error("model %r is not available: %s", self.model_id, self.error)
        except Exception as exc:
            self.error = f"loading failed: {type(exc).__name__}: {exc}"
            self.state = "error"
            log.exception("model %r failed to load", self.model_id)
        else:
            self.model = model
            self.load_seconds = round(time.perf_counter() - started, 3)
            self.state = "ready"
            log.info("model %r ready on %s in %.1f s", self.model_id, model.device, self.load_seconds)
        finally:
            self._loaded.set_result(None)
        carry = self._serve() if self.model is not None else None
        self._fail_queued(carry)

    def _serve(self) -> Any:
        """Run batches until _STOP; returns a chunk taken but not run."""
        carry = None
        while True:
            first = carry if carry is not None else self._queue.get()
            carry = None
            if first is _STOP:
                return None
            batch, size, stop = [first], len(first.texts), False
            deadline = first.queued + self.batch_wait
            while size < self.max_batch_size:
                remaining = deadline - time.monotonic()
                try:
                    item = self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is _STOP:
                    stop = True
                    break
                if size + len(item.texts) > self.max_batch_size:
                    carry = item
                    break
                batch.append(item)
                size += len(item.texts)
            self._run_batch(batch)
            if stop:
                return carry

    def _run_batch(self, batch: list[_Chunk]) -> None:
        live = [c for c in batch if not c.dropped]
        self.stats.dropped_texts += sum(len(c.texts) for c in batch if c.dropped)
        if not live:
            return
        texts = [t for c in live for t in c.texts]
        started = time.perf_counter()
        try:
            encoded = self.model.encode(texts)
        except Exception as exc:
            log.exception("model %r failed to encode a batch of %d texts", self.model_id, len(texts))
            for chunk in live:
                self._deliver(chunk, None, StackError(f"model {self.model_id!r} failed to encode: {exc}"))
            return
        stats = self.stats
        stats.encode_seconds += time.perf_counter() - started
        stats.encode_calls += 1
        stats.forward_passes += encoded.passes
        stats.texts += len(texts)
        stats.tokens += int(encoded.tokens.sum())
        stats.largest_batch = max(stats.largest_batch, len(texts))
        offset = 0
        for chunk in live:
            end = offset + len(chunk.texts)
            self._deliver(chunk, (encoded.vectors[offset:end], encoded.tokens[offset:end]), None)
            offset = end

    def _deliver(self, chunk: _Chunk, result: Any, error: BaseException | None) -> None:
        try:
            chunk.loop.call_soon_threadsafe(_settle, chunk.future, result, error)
        except RuntimeError:  # that event loop is closed: nobody waits for this chunk
            pass

    def _fail_queued(self, carry: Any) -> None:
        pending = [carry] if carry is not None else []
        while True:
            try:
                pending.append(self._queue.get_nowait())
            except queue.Empty:
                break
        for chunk in pending:
            if chunk is not _STOP:
                self._deliver(chunk, None, StackError(f"model {self.model_id!r}: the provider is shutting down"))
