"""One thread per model: it owns the llama object and runs queued jobs in FIFO order.

Results go back to the asking event loop with ``loop.call_soon_threadsafe``
(one wake-up per batch of items, see ``Job``): one future for a plain
result, an ``asyncio.Queue`` for a stream. A job whose
task was cancelled before it started is dropped; a running job sees its
``cancel`` event between tokens and stops.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import queue
import threading
from dataclasses import dataclass, field
from typing import Any, Callable

from stack.errors import BadRequestError, StackError

from .config import LlamaCppConfig, LlamaCppModelConfig, usable_cores

log = logging.getLogger(__name__)


class JobCancelled(Exception):
    """Raised inside the worker when the client of a running job went away."""


@dataclass(eq=False)
class Job:
    """A unit of work for a model's thread: ``fn(llama, job)`` runs there.

    What the job sends (stream items, then its end or error) waits in an
    outbox; the event loop is woken once per batch, not once per item: while
    it is busy (sending the previous token, serving other requests) the
    tokens generated meanwhile reach it together, in order, with one
    wake-up instead of one each.
    """

    fn: Callable[[Any, "Job"], Any]
    loop: asyncio.AbstractEventLoop
    sink: Callable[[str, Any], None]
    seq: int
    cancel: threading.Event = field(default_factory=threading.Event)
    _outbox: collections.deque = field(default_factory=collections.deque)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _wake_pending: bool = False

    def emit(self, item: Any) -> None:
        """Send one stream item to the event loop; raises JobCancelled once the client left."""
        if self.cancel.is_set():
            raise JobCancelled
        self.deliver("item", item)

    def check(self) -> None:
        if self.cancel.is_set():
            raise JobCancelled

    def deliver(self, kind: str, value: Any) -> None:
        with self._lock:
            self._outbox.append((kind, value))
            if self._wake_pending:
                return  # the loop has yet to take the batch this joins
            self._wake_pending = True
        try:
            self.loop.call_soon_threadsafe(self._hand_over)
        except RuntimeError:  # the loop is closed: nobody is listening any more
            self.cancel.set()

    def _hand_over(self) -> None:
        """Event loop: pass everything sent since the last wake-up to the sink, in order."""
        with self._lock:
            batch = list(self._outbox)
            self._outbox.clear()
            self._wake_pending = False
        for kind, value in batch:
            self.sink(kind, value)


_NOTHING = object()


class TokenStream:
    """The async side of a streaming job: yields what the job emits, in order."""

    def __init__(self, items: asyncio.Queue, job: Job) -> None:
        self._items = items
        self._job = job
        self._done = False
        self._first: Any = _NOTHING

    def __aiter__(self) -> "TokenStream":
        return self

    async def _get(self) -> tuple[str, Any]:
        try:
            return await self._items.get()
        except BaseException:  # cancelled: the client went away
            self._stop()
            raise

    async def wait_first(self) -> None:
        """Wait for the job's first item (kept for ``__anext__``); raise its error instead, if any."""
        kind, value = await self._get()
        if kind == "item":
            self._first = value
            return
        self._done = True
        if kind == "error":
            raise value

    async def __anext__(self) -> Any:
        if self._first is not _NOTHING:
            value, self._first = self._first, _NOTHING
            return value
        if self._done:
            raise StopAsyncIteration
        kind, value = await self._get()
        if kind == "item":
            return value
        self._done = True
        if kind == "error":
            raise value
        raise StopAsyncIteration

    def _stop(self) -> None:
        self._done = True
        self._job.cancel.set()

    async def aclose(self) -> None:
        self._stop()

    def __del__(self) -> None:  # dropped without being drained: stop generating
        self._job.cancel.set()


_STOP = object()


class ModelWorker:
    """The thread that owns one model. ``state`` is what health() reports."""

    def __init__(self, model_id: str, entry: LlamaCppModelConfig, config: LlamaCppConfig) -> None:
        self.model_id = model_id
        self.entry = entry
        self.config = config
        self.llama: Any = None
        self.state = "not loaded"
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self.last_seq = 0  # sequence number of the job queued last
        self._current: Job | None = None
        self._thread = threading.Thread(target=self._run, name=f"llama-cpp:{model_id}", daemon=True)
        # observability (and tests): sequence numbers of jobs in the order they started
        self.started: collections.deque[int] = collections.deque(maxlen=1000)
        self.outcomes: dict[int, str] = {}  # seq -> "done" | "cancelled" | "dropped" | "error"
        self.dropped = 0
        self._closing = False

    @property
    def queued(self) -> int:
        """Jobs waiting for the thread (not counting the one it runs)."""
        return self._jobs.qsize()

    # -- event-loop side ---------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def load_in_background(self) -> None:
        if self.llama is None and self.state == "not loaded":
            self.state = "loading"
            self._jobs.put(None)  # None: just load

    def _enqueue(self, fn: Callable[[Any, Job], Any], sink: Callable[[str, Any], None]) -> Job:
        if self._closing or not self._thread.is_alive():
            raise StackError(f"model {self.model_id!r} is shut down")
        self.last_seq += 1
        job = Job(fn=fn, loop=asyncio.get_running_loop(), sink=sink, seq=self.last_seq)
        self._jobs.put(job)
        return job

    async def call(self, fn: Callable[[Any, Job], Any]) -> Any:
        """Run ``fn(llama, job)`` on the model's thread and return its result."""
        future = asyncio.get_running_loop().create_future()

        def sink(kind: str, value: Any) -> None:
            if future.done():
                return
            if kind == "error":
                future.set_exception(value)
            elif kind == "end":
                future.set_result(value)

        job = self._enqueue(fn, sink)
        try:
            return await future
        except asyncio.CancelledError:
            job.cancel.set()
            raise

    async def stream(self, fn: Callable[[Any, Job], Any]) -> TokenStream:
        """Start ``fn(llama, job)``, which calls ``job.emit(item)``; wait for its first item.

        Errors before the first item are raised here, so they get a proper
        status code rather than an event in a started stream.
        """
        items: asyncio.Queue = asyncio.Queue()
        job = self._enqueue(fn, lambda kind, value: items.put_nowait((kind, value)))
        stream = TokenStream(items, job)
        await stream.wait_first()
        return stream

    async def shutdown(self) -> None:
        """Refuse queued jobs, stop the running one between tokens, free the model, end the thread."""
        self._closing = True
        current = self._current
        if current is not None:
            current.cancel.set()
        self._jobs.put(_STOP)
        if self._thread.is_alive():
            await asyncio.to_thread(self._thread.join)

    # -- worker thread -----------------------------------------------------------

    def _load(self) -> None:
        path = self.entry.locate()
        if path is None:
            self.state = f"error: GGUF not on disk: {self.entry.missing_hint()}"
            raise model_missing_error(self.model_id, self.entry)
        self.state = "loading"
        try:
            from llama_cpp import Llama

            self.llama = Llama(
                model_path=str(path),
                n_ctx=self.entry.n_ctx,
                n_threads=self.config.n_threads,
                n_threads_batch=self.config.n_threads_batch or usable_cores(),
                n_batch=self.config.n_batch,
                n_gpu_layers=self.config.n_gpu_layers,
                logits_all=False,
                verbose=False,
            )
        except Exception as exc:
            self.state = f"error: {type(exc).__name__}: {exc}"
            log.error("llama-cpp: model %r failed to load from %s: %s", self.model_id, path, exc)
            raise BadRequestError(f"model {self.model_id!r} failed to load from {str(path)!r}: {exc}", field="model") from None
        self.state = "ready"

    def _run(self) -> None:
        try:
            while True:
                job = self._jobs.get()
                if job is _STOP:
                    break
                if job is None:  # load at start-up
                    if not self._closing:
                        try:
                            self._load()
                        except Exception as exc:  # the state says why; requests report it as a 4xx
                            log.warning("model %r failed to load: %s", self.model_id, exc)
                    continue
                if self._closing:
                    job.deliver("error", StackError(f"model {self.model_id!r} is shutting down"))
                    continue
                if job.cancel.is_set():
                    self.dropped += 1
                    self._record(job.seq, "dropped")
                    continue
                self._run_job(job)
        finally:
            self._drain()
            self._free()

    def _run_job(self, job: Job) -> None:
        self._current = job
        self.started.append(job.seq)
        outcome = "error"
        try:
            if self.llama is None:
                self._load()
            result = job.fn(self.llama, job)
        except JobCancelled:
            outcome = "cancelled"
            job.deliver("end", None)
        except StackError as exc:
            job.deliver("error", exc)
        except Exception as exc:  # a bug or an engine failure: log it, the server answers 500
            log.exception("llama-cpp: request on model %r failed", self.model_id)
            job.deliver("error", exc)
        else:
            outcome = "done"
            job.deliver("end", result)
        finally:
            self._current = None
            self._record(job.seq, outcome)

    def _record(self, seq: int, outcome: str) -> None:
        self.outcomes[seq] = outcome
        self.outcomes.pop(seq - 1000, None)

    def _drain(self) -> None:
        while True:
            try:
                job = self._jobs.get_nowait()
            except queue.Empty:
                return
            if isinstance(job, Job):
                job.deliver("error", StackError(f"model {self.model_id!r} is shutting down"))

    def _free(self) -> None:
        if self.llama is not None:
            try:
                self.llama.close()
            except Exception:  # freeing must not keep the thread from ending
                log.exception("llama-cpp: freeing model %r failed", self.model_id)
            self.llama = None
        self.state = "stopped"


class ModelFileMissingError(BadRequestError):
    """A configured model whose GGUF file is not on disk."""


def model_missing_error(model_id: str, entry: LlamaCppModelConfig) -> ModelFileMissingError:
    return ModelFileMissingError(
        f"model {model_id!r} is not on disk: its GGUF is the {entry.describe()}, and {entry.missing_hint()}",
        field="model",
    )
