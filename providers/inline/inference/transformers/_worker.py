"""One worker thread per model: it loads the model, then runs its jobs one at a time, first come first served.

A job whose request was cancelled before it started never runs (its future is
cancelled, and the job checks its ``cancel`` event as it starts); a running
job sees ``cancel`` between tokens and stops. Results go back to the event
loop through ``asyncio.wrap_future`` (one result) or ``call_soon_threadsafe``
into an ``asyncio.Queue`` (a stream): the loop never blocks on the model.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable

from providers.utils.inference.load_lock import MODEL_LOAD_LOCK
from providers.utils.inference.transformers_models import LoadError
from stack.errors import ClientError, NotFoundError, StackError

from .config import TransformersConfig, TransformersModelConfig

log = logging.getLogger(__name__)


class ModelUnavailableError(NotFoundError):
    """The model's weights are not on disk (404), named with where they were looked for."""

    def __init__(self, model_id: str, reason: str) -> None:
        ClientError.__init__(self, f"model {model_id!r} is not available: {reason}")
        self.kind = "Model"
        self.identifier = model_id


class ModelLoadError(StackError):
    """The weights are there but could not be loaded (a server-side problem: 500 with the reason)."""


class EventStream:
    """The event-loop side of a streaming job: ``next()`` returns its events in order, then None."""

    def __init__(self, items: asyncio.Queue, cancel: threading.Event, future: Future) -> None:
        self._items, self.cancel, self._future = items, cancel, future
        self._done = False

    async def next(self) -> Any:
        """The next event; None once the job ended; the job's exception if it failed."""
        if self._done:
            return None
        try:
            kind, value = await self._items.get()
        except BaseException:  # the consumer was cancelled: stop the job
            self.close()
            raise
        if kind == "event":
            return value
        self._done = True
        if not value.cancelled() and value.exception() is not None:
            raise value.exception()
        return None

    def close(self) -> None:
        self.cancel.set()
        self._future.cancel()

    def __del__(self) -> None:  # dropped without being drained: stop generating
        self.cancel.set()


class ModelWorker:
    """The thread that owns one model. ``state`` is what health() reports."""

    def __init__(self, model_id: str, entry: TransformersModelConfig, config: TransformersConfig) -> None:
        self.model_id, self.entry, self.config = model_id, entry, config
        self.state = "not loaded"
        self.loaded: Any = None
        self._error: tuple[type[StackError], str] | None = None
        self._load_future: Future | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"transformers:{model_id}")
        self._active: set[threading.Event] = set()
        self._closed = False
        # observability (and tests): jobs that ran, and queued jobs dropped because they were cancelled
        self.jobs_started = 0
        self.jobs_dropped = 0

    # -- loading -------------------------------------------------------------------

    def start_loading(self) -> None:
        if self._load_future is None and not self._closed:
            self.state = "loading"
            self._load_future = self._executor.submit(self._load)

    def _load(self) -> None:  # worker thread
        missing = self.entry.missing()
        if missing is not None:
            self._fail(ModelUnavailableError, f"{missing} ({self.entry.describe()})")
            return
        try:
            # torch's and transformers' first imports happen here: under the lock (load_lock.py says why)
            with MODEL_LOAD_LOCK:
                loaded = self._load_weights()
                from . import _generation  # noqa: F401 - imported now, not by the first request outside the lock
        except LoadError as exc:
            self._fail(ModelLoadError, f"model {self.model_id!r} cannot be loaded: {exc}")
            return
        except Exception as exc:  # noqa: BLE001 - any loader failure is reported, never fatal
            log.exception("loading model %r (%s) failed", self.model_id, self.entry.describe())
            self._fail(ModelLoadError, f"model {self.model_id!r} ({self.entry.describe()}) failed to load: "
                                       f"{type(exc).__name__}: {exc}")
            return
        self.loaded, self._error, self.state = loaded, None, "ready"
        log.info("model %r ready on %s (%s)", self.model_id, loaded.device, loaded.dtype_name)

    def _load_weights(self) -> Any:  # worker thread
        from providers.utils.inference.transformers_loading import load_model

        return load_model(self.entry, self.config.device, self.config.dtype)

    def _fail(self, cls: type[StackError], message: str) -> None:
        self._error = (cls, message)
        self.state = f"error: {message}"
        log.error("%s", message if cls is ModelLoadError else f"model {self.model_id!r}: {message}")

    async def ready(self) -> Any:
        """The loaded model, loading it first if needed; a 404 naming it when its weights are missing."""
        if self._closed:
            raise StackError(f"model {self.model_id!r} is shut down")
        self.start_loading()
        await asyncio.shield(asyncio.wrap_future(self._load_future))
        if self.loaded is not None:
            return self.loaded
        cls, message = self._error or (ModelLoadError, f"model {self.model_id!r} did not load")
        if cls is ModelUnavailableError:
            self._load_future = None  # files may appear later: look again on the next request
            raise ModelUnavailableError(self.model_id, message)
        raise cls(message)

    # -- jobs ----------------------------------------------------------------------

    def _submit(self, fn: Callable[[], Any], cancel: threading.Event) -> Future:
        if self._closed:
            raise StackError(f"model {self.model_id!r} is shut down")

        def guarded() -> Any:
            try:
                if cancel.is_set():
                    self.jobs_dropped += 1
                    return None
                self.jobs_started += 1
                return fn()
            finally:
                self._active.discard(cancel)

        self._active.add(cancel)
        future = self._executor.submit(guarded)
        future.add_done_callback(lambda f: self._finished(f, cancel))
        return future

    def _finished(self, future: Future, cancel: threading.Event) -> None:
        self._active.discard(cancel)
        if future.cancelled():  # still queued when its request went away: it never ran
            self.jobs_dropped += 1

    async def call(self, fn: Callable[[threading.Event], Any]) -> Any:
        """Run ``fn(cancel)`` on the model's thread, after the jobs queued before it."""
        cancel = threading.Event()
        future = self._submit(lambda: fn(cancel), cancel)
        try:
            return await asyncio.wrap_future(future)
        except asyncio.CancelledError:
            cancel.set()
            future.cancel()
            raise

    def stream(self, fn: Callable[[threading.Event, Callable[[Any], None]], Any]) -> EventStream:
        """Queue ``fn(cancel, emit)``; what it emits comes out of the returned stream."""
        loop = asyncio.get_running_loop()
        items: asyncio.Queue = asyncio.Queue()
        cancel = threading.Event()

        def deliver(kind: str, value: Any) -> None:
            try:
                loop.call_soon_threadsafe(items.put_nowait, (kind, value))
            except RuntimeError:  # the loop is closed: nobody listens any more
                cancel.set()

        future = self._submit(lambda: fn(cancel, lambda event: deliver("event", event)), cancel)
        future.add_done_callback(lambda f: deliver("done", f))
        return EventStream(items, cancel, future)

    # -- shutdown ------------------------------------------------------------------

    async def shutdown(self) -> None:
        """Stop running jobs, drop queued ones, then free the model (and its GPU memory)."""
        self._closed = True
        for cancel in list(self._active):
            cancel.set()
        self._executor.shutdown(wait=False, cancel_futures=True)
        await asyncio.to_thread(self._executor.shutdown, wait=True)
        loaded, self.loaded = self.loaded, None
        self.state = "shut down"
        if loaded is not None:
            from providers.utils.inference.transformers_loading import free

            await asyncio.to_thread(free, loaded)
