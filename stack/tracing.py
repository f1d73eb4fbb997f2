"""Tracing core: the current span, cheap spans, ids, W3C traceparent, and the
buffer that carries finished spans to the telemetry provider's sinks.

Nothing is recorded until a telemetry provider installs a ``Collector``; until
then ``span()`` yields None and costs one global lookup.

The request path's part is in C (stack/_spancore.c, built by setup.py): the wrapper
that makes a traced router or provider call a span, ``finish_span`` and
``start_child``. This module keeps the policy it follows: the span's layout, ids,
attribute hooks, streams and the collector.

    with tracing.span("inference.chat_completion", **{"gen_ai.request.model": m}) as s:
        ...
        if s is not None:
            s.set("gen_ai.usage.output_tokens", n)
"""

from __future__ import annotations

import asyncio
import collections
import functools
import inspect
import logging
import os
import random
import re
import time
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, AsyncIterator, Callable, Iterator, NamedTuple, Protocol

from . import _spancore, request_context
from .errors import ServiceUnavailableError

log = logging.getLogger(__name__)

_random = random.Random()  # ids need to be unique, not secret: no syscall per id
_TRACEPARENT = re.compile(r"^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")


#: ``new_trace_id()``: 16 bytes as 32 hex digits, the first 6 the time in milliseconds, the other 10
#: random (W3C Trace Context level 2 asks the right-most 7 to be random; samplers read the low bytes).
#: Ids made here sort by time, so the span store's key index grows at its end: with random ids every
#: batch dirtied pages all over it, and writing them cost more than the rest of tracing
#: (docs/performance.md). Made in C: a request's root span makes one there
new_trace_id: Callable[[], str] = _spancore.new_trace_id


#: ``new_span_id()``: 8 bytes as 16 hex digits, the first 4 the time in milliseconds modulo 2^32 and
#: the other 4 random (so root span ids index in time order), never all zeros (C: a request makes four)
new_span_id: Callable[[], str] = _spancore.new_span_id


def _after_fork() -> None:
    _random.seed()  # forked workers must not repeat the parent's ids
    _spancore.reseed()


os.register_at_fork(after_in_child=_after_fork)


def parse_traceparent(value: str | bytes | None) -> tuple[str, str] | None:
    """(trace_id, parent span_id) of a W3C ``traceparent``; None when it is malformed or all-zero."""
    if not value:
        return None
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    match = _TRACEPARENT.match(value.strip().lower())
    if match is None or match.group(1) == "ff":
        return None
    trace_id, span_id = match.group(2), match.group(3)
    if trace_id == "0" * 32 or span_id == "0" * 16:
        return None
    return trace_id, span_id


def traceparent_sampled(value: str | bytes) -> bool:
    """The sampled flag of a well-formed ``traceparent`` (its last field's lowest bit)."""
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    return bool(int(value.strip()[-2:], 16) & 1)


def sampled(rate: float) -> bool:
    """Whether a new trace is recorded, at ``rate`` (0-1)."""
    return rate >= 1 or _random.random() < rate


def format_traceparent(trace_id: str, span_id: str) -> str:
    return f"00-{trace_id}-{span_id}-01"


#: a metric recorded on a span in-process: (metric, value, unit, epoch ns, attributes); a plain
#: tuple because a request makes several and they wait in the buffer until the next flush
Metric = tuple[str, "int | float", str, int, dict[str, Any]]
#: metrics worked out from a finished span when a sink asks for them (``span_metrics``), by
#: name: a span's ``metrics`` may hold such a name instead of tuples (the GenAI token and latency
#: metrics come from the span's attributes and times, so the request path builds none)
DERIVED_METRICS: dict[str, Callable[["FinishedSpan"], list[Metric]]] = {}


#: where hot paths index a ``SpanRecord`` (a subscript costs a tenth of a property's lookup)
TRACE_ID, SPAN_ID, NAME, END, STATUS, ATTRIBUTES, METRICS = 0, 1, 3, 5, 6, 8, 9


class SpanRecord(_spancore.Span):
    """One span while it runs: a sequence in ``FinishedSpan``'s field order, its fields by name as
    well (``record.status``, ``record.attributes``), snapshotted when it ends with ``tuple(record)``.
    In C (stack/_spanrecord.c): the request path makes four a request and holds their ids, times
    and shared attributes as machine values until Python reads them. Make one with
    ``SpanRecord.new`` (or ``SpanRecord(fields)``). Times are epoch nanoseconds."""

    __slots__ = ()

    @classmethod
    def new(cls, trace_id: str, span_id: str, parent_span_id: str | None, name: str, start_ns: int,
            end_ns: int | None = None, attributes: dict[str, Any] | None = None, status: str = "ok",
            root: bool = False, metrics: tuple[Metric | str, ...] | None = None,
            expires_ns: int | None = None) -> SpanRecord:
        return cls((trace_id, span_id, parent_span_id, name, start_ns, end_ns, status, root,
                    {} if attributes is None else attributes, metrics, expires_ns))

    def finished(self) -> FinishedSpan:
        return named_span(tuple(self))


#: a finished span as the collector buffers it and the sinks get it: ``FinishedSpan``'s fields in a
#: plain tuple, ``tuple(record)`` as the span ends (``marshal`` carries it to the span writer process,
#: which refuses a NamedTuple); ``named_span`` makes it a ``FinishedSpan`` for sinks that read by name
SpanTuple = tuple


class FinishedSpan(NamedTuple):
    """A span that ended, by field name (``named_span`` of a ``SpanTuple``). ``span[1:9]`` is
    what a span store keeps of it."""

    trace_id: str
    span_id: str
    parent_span_id: str | None
    name: str
    start_ns: int
    end_ns: int | None
    status: str
    root: bool
    attributes: dict[str, Any]
    metrics: tuple[Metric | str, ...] | None
    expires_ns: int | None

    def metric_events(self) -> list[EventRecord]:
        """The span's metrics as MetricEvents (for sinks that want event objects)."""
        return [EventRecord(self.trace_id, self.span_id, at, "metric", attributes, metric=metric, value=value,
                            unit=unit) for metric, value, unit, at, attributes in span_metrics(self)]


def span_metrics(span: FinishedSpan) -> list[Metric]:
    """A finished span's metrics, the derived ones worked out now."""
    metrics: list[Metric] = []
    for item in span.metrics or ():
        if type(item) is str:
            metrics += DERIVED_METRICS[item](span)
        else:
            metrics.append(item)
    return metrics


#: a ``SpanTuple`` as a ``FinishedSpan`` (no Python-level ``__new__``: C speed)
named_span = functools.partial(tuple.__new__, FinishedSpan)


@dataclass(slots=True)
class EventRecord:
    """A log line or metric attached to a span (the Telemetry API's events)."""

    trace_id: str
    span_id: str
    time_ns: int  # epoch ns (a datetime costs more to make than the rest of a metric)
    type: str  # "unstructured_log" | "metric"
    attributes: dict[str, Any]
    message: str | None = None
    severity: str | None = None
    metric: str | None = None
    value: float | int | None = None
    unit: str | None = None
    #: epoch ns after which a store may delete it (posted events' ttl_seconds); None: kept
    expires_ns: int | None = None

    @property
    def timestamp(self) -> datetime:
        return to_datetime(self.time_ns)


def to_datetime(ns: int) -> datetime:
    return datetime.fromtimestamp(ns / 1e9, tz=timezone.utc)


class Sink(Protocol):
    """Where finished spans and events go; ``export`` is awaited by the collector's flush task."""

    async def export(self, spans: list[SpanTuple], events: list[EventRecord]) -> None: ...

    async def close(self) -> None: ...

    # optional: ``async def maintain(self) -> None``, awaited after each flush tick (pruning, say);
    # ``async def export_encoded(self, chunks: list[bytes], events) -> None``, given the spans as
    # the buffer encoded them (``SpanBuffer`` chunks, ``decode`` reads one) instead of ``export``


#: spans a ``SpanBuffer`` chunk holds at most (a full buffer drops its oldest chunk)
CHUNK_SPANS = 512


class Collector:
    """A bounded buffer of finished spans and events, flushed in batches to the
    sinks by a background task. When full it drops the oldest (``dropped``
    counts them) instead of slowing requests down. Spans are encoded as they are
    added (``SpanBuffer``, in C) and dropped a chunk at a time: at most an eighth
    of ``max_buffer``, ``CHUNK_SPANS`` at most."""

    def __init__(self, sinks: list[Sink], *, max_buffer: int = 10_000, batch_size: int = 4096,
                 interval: float = 1.0, sample_rate: float = 1.0) -> None:
        self.sinks = sinks
        #: the share of requests without a caller's traceparent that are recorded (head sampling)
        self.sample_rate = sample_rate
        self.max_buffer = max_buffer
        self.batch_size = batch_size
        self.interval = interval
        self.dropped = 0
        self.exported = 0
        self.failed_batches = 0
        # the C side (``_spancore.install``) holds on to both: they are emptied, never replaced
        self._spans = _spancore.SpanBuffer(max(1, min(CHUNK_SPANS, max_buffer // 8)))
        self._events: collections.deque[EventRecord] = collections.deque()
        #: buffered spans and events at which ``add_span`` looks closer (a batch to flush, or full)
        self._attention = min(batch_size, max_buffer)
        self._task: asyncio.Task | None = None
        self._wake: asyncio.Event | None = None
        self._lock: asyncio.Lock | None = None

    def add_span(self, record: SpanRecord | SpanTuple) -> None:
        spans = self._spans
        spans.append(record)
        if len(spans) + len(self._events) >= self._attention:
            self._batch_ready()

    def add_event(self, record: EventRecord) -> None:
        self._events.append(record)
        if len(self._spans) + len(self._events) >= self._attention:
            self._batch_ready()

    def _batch_ready(self) -> None:
        """Full: the oldest go (counted); a batch's worth: the flush task is woken."""
        while len(self._spans) + len(self._events) > self.max_buffer:
            if len(self._spans):
                self.dropped += self._spans.drop_oldest()
            else:
                self._events.popleft()
                self.dropped += 1
        if (len(self._spans) >= self.batch_size or len(self._events) >= self.batch_size) and self._wake is not None:
            self._wake.set()

    def start(self) -> None:
        self._wake, self._lock = asyncio.Event(), asyncio.Lock()
        self._task = asyncio.get_running_loop().create_task(self._run(), name="telemetry-flush")

    async def _run(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self._wake.wait(), self.interval)
            except asyncio.TimeoutError:
                pass
            self._wake.clear()
            await self.flush()
            await self._maintain()

    async def _maintain(self) -> None:
        for sink in self.sinks:
            maintain = getattr(sink, "maintain", None)
            if maintain is not None:
                try:
                    await maintain()
                except Exception:
                    log.exception("telemetry sink %s failed its upkeep", type(sink).__name__)

    async def flush(self) -> None:
        """Hand everything buffered now to the sinks (a failing sink loses its batch, logged)."""
        if self._lock is None:
            return
        async with self._lock:
            while len(self._spans) or self._events:
                chunks = self._spans.take()  # requests go on filling the emptied buffers
                events = list(self._events)
                self._events.clear()
                groups = _batches(chunks, self.batch_size)
                event_batches = [events[i:i + self.batch_size] for i in range(0, len(events), self.batch_size)]
                for i in range(max(len(groups), len(event_batches))):
                    await self._export(groups[i] if i < len(groups) else [],
                                       event_batches[i] if i < len(event_batches) else [])

    async def _export(self, chunks: list[bytes], events: list[EventRecord]) -> None:
        count = sum(map(_spancore.chunk_spans, chunks))
        spans: list[SpanTuple] | None = None  # decoded once, for the sinks that take tuples
        for sink in self.sinks:
            try:
                encoded = getattr(sink, "export_encoded", None)
                if encoded is not None:
                    await encoded(chunks, events)
                else:
                    if spans is None:
                        spans = decode_chunks(chunks)
                    await sink.export(spans, events)
            except ServiceUnavailableError as exc:  # the database is away for a while: one line, no traceback
                self.failed_batches += 1
                log.warning("telemetry sink %s: %s; %d spans lost there", type(sink).__name__, exc, count)
            except Exception:
                self.failed_batches += 1
                log.exception("telemetry sink %s failed; %d spans lost there", type(sink).__name__, count)
        self.exported += count

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        await self.flush()
        for sink in self.sinks:
            try:
                await sink.close()
            except Exception:
                log.exception("telemetry sink %s failed to close", type(sink).__name__)

    def stats(self) -> dict[str, Any]:
        """The buffer's counts, and what sinks with a ``stats()`` add (the span store: who writes it)."""
        stats: dict[str, Any] = {
            "buffered_spans": len(self._spans), "buffered_events": len(self._events),
            "exported_spans": self.exported, "dropped": self.dropped, "failed_batches": self.failed_batches}
        for sink in self.sinks:
            own = getattr(sink, "stats", None)
            if own is not None:
                stats.update(own())
        return stats


def decode_chunks(chunks: list[bytes]) -> list[SpanTuple]:
    """The spans of ``SpanBuffer`` chunks, as tuples of their fields."""
    return [span for chunk in chunks for span in _spancore.decode(chunk)]


def _batches(chunks: list[bytes], batch_size: int) -> list[list[bytes]]:
    """``chunks`` in groups of about ``batch_size`` spans (a sink's batch)."""
    groups: list[list[bytes]] = []
    held = batch_size
    for chunk in chunks:
        if held >= batch_size:
            groups.append([])
            held = 0
        groups[-1].append(chunk)
        held += _spancore.chunk_spans(chunk)
    return groups


_collector: Collector | None = None
_current: ContextVar[SpanRecord | None] = ContextVar("current_span", default=None)
#: the current "span" of a request that sampling left out: nothing under it is recorded
UNSAMPLED = SpanRecord.new("", "", None, "unsampled", 0)


def install(collector: Collector | None) -> None:
    """Make ``collector`` receive every finished span of this process (None: stop tracing)."""
    global _collector
    _collector = collector
    if collector is None:
        _spancore.install(None)
    else:
        _spancore.install(collector, collector._spans, collector._events, collector._batch_ready, collector._attention)


def enabled() -> bool:
    return _collector is not None


def recording() -> bool:
    """Whether a span started now is kept: tracing is on and the request was sampled."""
    return _collector is not None and _current.get() is not UNSAMPLED


def collector() -> Collector | None:
    return _collector


#: ``current()``: the span code runs in now. ``_current`` holds the span a request's root, a ``span()``
#: block or a traced call of another task made current; traced calls in the task that set it hang
#: their spans under it instead of setting it again (stack/_spancore.c, "the current span"), and the
#: innermost of those is current
current: Callable[[], "SpanRecord | None"] = _spancore.current


def current_span() -> SpanRecord | None:
    span = current()
    return None if span is UNSAMPLED else span


def start_span(name: str, attributes: dict[str, Any] | None = None, *,
               parent: tuple[str, str] | None = None) -> SpanRecord:
    """A new span, child of ``parent`` (trace_id, span_id) or of the current span, or a new trace's root."""
    if parent is not None:
        trace_id, parent_id = parent
    else:
        running = current()
        trace_id, parent_id = (new_trace_id(), None) if running is None else (running[0], running[1])
    return SpanRecord((trace_id, new_span_id(), parent_id, name, time.time_ns(), None, "ok", False,
                       {} if attributes is None else attributes, None, None))


#: ``finish_span(record, error=None)``: end a running span (now; failed with ``error``) and buffer it
#: for the installed collector (C: the request path finishes four spans)
finish_span: Callable[..., None] = _spancore.finish
#: ``start_child(name, attributes)``: a running span, child of the current one (a new trace's first
#: without one), holding ``attributes`` itself (not a copy); the upstream call's span (C)
start_child: Callable[[str, dict[str, Any]], SpanRecord] = _spancore.start_child
#: ``start_upstream(method, url, upstream)``: a call to an upstream service's span, child of the
#: current one, and the ``traceparent`` value to send it; None when the request is not recorded
start_upstream: Callable[[str, str, str], "tuple[SpanRecord, str] | None"] = _spancore.start_upstream
#: ``finish_upstream(record, status)``: the upstream answered HTTP ``status``; its span ends
finish_upstream: Callable[[SpanRecord, int], None] = _spancore.finish_upstream


#: ``activate_token(record)`` makes ``record`` the current span until ``reset_current(token)``
#: (``span()`` without a generator); the context variable's own methods: C calls
activate_token: Callable[[SpanRecord], Any] = _current.set
reset_current: Callable[[Any], None] = _current.reset


@contextmanager
def span(name: str, **attributes: Any) -> Iterator[SpanRecord | None]:
    """A child of the current span for the block; None (and nothing recorded) when tracing is off."""
    if not recording():
        yield None
        return
    record = start_span(name, attributes)
    token = _current.set(record)
    try:
        yield record
    except BaseException as exc:
        finish_span(record, exc)
        raise
    else:
        finish_span(record)
    finally:
        _current.reset(token)


def record_metric(record: SpanRecord, metric: str, value: float, unit: str, *, at: int | None = None,
                  **attributes: Any) -> None:
    """A MetricEvent on ``record``'s span (sent with the span when it finishes); ``at``: epoch ns, default now."""
    item = (metric, value, unit, at or time.time_ns(), attributes)
    # a tuple, like the derived-metric names an inference span starts with (``_trace_stack``)
    record.metrics = (item,) if record.metrics is None else (*record.metrics, item)


# -- instrumenting the objects that serve an API --------------------------------------------

#: (span, the call's positional and keyword arguments, its result or None when it failed)
AttributeHook = Callable[[SpanRecord, tuple, dict[str, Any], Any], None]


def instrument(obj: Any, api: str, names: list[str], *, kind: str, provider_id: str | None = None,
               on_result: AttributeHook | None = None, attributes: dict[str, Any] | None = None,
               attributes_by_name: dict[str, dict[str, Any]] | None = None) -> None:
    """Wrap ``obj``'s methods ``names`` (in place, on the instance) so each call is a span
    ``<kind> <api>.<name>`` starting with ``attributes`` and the method's own
    ``attributes_by_name[name]`` (fixed per method: set here once, not worked out per call);
    a call that returns an async iterator ends its span when the stream ends."""
    base = {"polystack.api": api, **(attributes or {})}
    if provider_id is not None:
        base["polystack.provider_id"] = provider_id
    for name in names:
        method = getattr(obj, name, None)
        if method is None or getattr(method, "__traced__", False) or not inspect.iscoroutinefunction(method):
            continue
        own = (attributes_by_name or {}).get(name)
        setattr(obj, name, _traced(method, f"{kind} {api}.{name}", {**base, **own} if own else base, on_result))


def _traced(method: Callable[..., Any], span_name: str, base: dict[str, Any],
            on_result: AttributeHook | None) -> Callable[..., Any]:
    # a C callable (stack/_spancore.c): no coroutine frame of its own, the span started on the call's
    # first step and finished when it returns (streams: ``_finish_after``); tracing off, it returns
    # the method's own coroutine
    return _spancore.Traced(method, span_name, base, on_result)


def _finish(record: SpanRecord, args: tuple, kwargs: dict[str, Any], result: Any, on_result: AttributeHook | None,
            error: BaseException | None = None) -> None:
    """End ``record``; ``on_result`` adds attributes from the call (``result`` is None when it failed)."""
    if on_result is not None:
        try:
            on_result(record, args, kwargs, result)
        except Exception:  # attributes are best effort; they never fail the call
            log.debug("span attributes of %s failed", record.name, exc_info=True)
    finish_span(record, error)


async def _finish_after(stream: AsyncIterator[Any], record: SpanRecord, args: tuple, kwargs: dict[str, Any],
                        on_result: AttributeHook | None) -> AsyncIterator[Any]:
    """``stream`` passed through; the span ends with it (its last chunk goes to ``on_result``)."""
    last = None
    record.set("polystack.stream", True)
    try:
        async for chunk in stream:
            last = chunk
            yield chunk
    except BaseException as exc:  # GeneratorExit too: the client went away
        _finish(record, args, kwargs, None, on_result, exc)
        raise
    finally:  # closing this wrapper closes the stream it wraps (cancels the provider's work)
        closer = getattr(stream, "aclose", None)
        if closer is not None:
            await closer()
    _finish(record, args, kwargs, last, on_result)


_spancore.configure(_current, UNSAMPLED, SpanRecord, _finish_after, request_context._request)
