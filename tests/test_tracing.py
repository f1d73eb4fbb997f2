"""stack/tracing.py: ids, traceparent, nested spans, the bounded buffer and its flush."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time

import pytest

from stack import tracing


class ListSink:
    def __init__(self) -> None:
        self.spans, self.events, self.closed = [], [], False

    async def export(self, spans, events):
        # plain tuples, as the span writer process needs them (marshal refuses a NamedTuple)
        assert all(type(span) is tuple for span in spans)
        self.spans += map(tracing.named_span, spans)
        self.events += events

    async def close(self):
        self.closed = True


@contextlib.asynccontextmanager
async def collecting(max_buffer: int):
    """A ``ListSink`` getting this process's spans through a started, installed collector."""
    sink = ListSink()
    collector = tracing.Collector([sink], max_buffer=max_buffer, interval=0.01)
    collector.start()
    tracing.install(collector)
    try:
        yield sink
    finally:
        tracing.install(None)
        await collector.close()


@pytest.fixture
async def sink():
    async with collecting(max_buffer=4) as sink:
        yield sink


@pytest.mark.parametrize("value, parsed", [
    ("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", ("0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331")),
    (b"00-0AF7651916CD43DD8448EB211C80319C-B7AD6B7169203331-00", ("0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331")),
    ("00-00000000000000000000000000000000-b7ad6b7169203331-01", None),
    ("00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01", None),
    ("ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", None),
    ("00-0af7651916cd43dd8448eb211c80319c-b7ad6b71692033-01", None),
    ("garbage", None),
    ("", None),
])
def test_traceparent_parsing(value, parsed):
    assert tracing.parse_traceparent(value) == parsed


def test_traceparent_round_trip():
    trace_id, span_id = tracing.new_trace_id(), tracing.new_span_id()
    assert len(trace_id) == 32 and len(span_id) == 16
    assert tracing.parse_traceparent(tracing.format_traceparent(trace_id, span_id)) == (trace_id, span_id)


def test_without_a_collector_spans_are_none_and_nothing_is_kept():
    assert not tracing.enabled()
    with tracing.span("x", a=1) as span:
        assert span is None
        assert tracing.current_span() is None


async def test_nested_spans_share_the_trace_and_record_errors(sink):
    with tracing.span("outer", kind="test") as outer:
        with tracing.span("inner") as inner:
            assert tracing.current_span() is inner
        with pytest.raises(KeyError), tracing.span("failing"):
            raise KeyError("boom")
    assert tracing.current_span() is None
    await tracing.collector().flush()
    by_name = {s.name: s for s in sink.spans}
    assert by_name["inner"].trace_id == outer.trace_id and by_name["inner"].parent_span_id == outer.span_id
    assert by_name["outer"].parent_span_id is None and by_name["outer"].attributes == {"kind": "test"}
    assert by_name["failing"].status == "error" and by_name["failing"].attributes["error.type"] == "KeyError"
    assert all(s.end_ns >= s.start_ns for s in sink.spans)


async def test_a_full_buffer_drops_the_oldest_and_counts_them(sink):
    collector = tracing.collector()
    collector.interval = 60  # no flush while filling
    for i in range(6):
        tracing.finish_span(tracing.start_span(f"s{i}"))
    assert collector.stats()["dropped"] == 2
    await collector.flush()
    assert [s.name for s in sink.spans] == ["s2", "s3", "s4", "s5"]


async def test_the_background_task_flushes_and_a_failing_sink_does_not_stop_it(sink):
    class Broken:
        async def export(self, spans, events):
            raise RuntimeError("down")

        async def close(self):
            pass

    tracing.collector().sinks.insert(0, Broken())
    with tracing.span("flushed"):
        pass
    for _ in range(100):
        if sink.spans:
            break
        await asyncio.sleep(0.01)
    assert [s.name for s in sink.spans] == ["flushed"]
    assert tracing.collector().stats()["failed_batches"] == 1


async def test_instrumented_streams_end_their_span_with_the_stream(sink):
    class Service:
        async def stream(self, n):
            async def chunks():
                for i in range(n):
                    yield i
            return chunks()

    seen = []
    service = Service()
    tracing.instrument(service, "demo", ["stream"], kind="provider", provider_id="p",
                       on_result=lambda span, args, kwargs, result: seen.append((args, result)))
    tracing.instrument(service, "demo", ["stream"], kind="provider")  # never wrapped twice
    assert [c async for c in await service.stream(3)] == [0, 1, 2]
    await tracing.collector().flush()
    [span] = sink.spans
    assert span.name == "provider demo.stream" and span.attributes["polystack.provider_id"] == "p"
    assert span.attributes["polystack.stream"] is True
    assert seen == [((3,), 2)]  # the hook sees the last chunk


async def test_closing_a_traced_stream_closes_the_providers_stream(sink):
    closed = []

    class Service:
        async def stream(self):
            async def chunks():
                try:
                    for i in range(10):
                        yield i
                finally:
                    closed.append(True)
            return chunks()

    service = Service()
    tracing.instrument(service, "demo", ["stream"], kind="provider")
    stream = await service.stream()
    assert await stream.__anext__() == 0
    await stream.aclose()  # what the SSE layer does when the client disconnects
    assert closed == [True]
    await tracing.collector().flush()
    assert sink.spans[0].status == "error" and sink.spans[0].attributes["error.type"] == "GeneratorExit"


async def test_sinks_with_upkeep_get_it_after_each_flush_tick(sink):
    ticks = []

    class Upkept(ListSink):
        async def maintain(self):
            ticks.append(True)

    tracing.collector().sinks.append(Upkept())
    for _ in range(200):
        if ticks:
            break
        await asyncio.sleep(0.01)
    assert ticks


@pytest.mark.parametrize("value, flag", [
    ("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", True),
    (b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00", False),
    ("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-03", True),
])
def test_the_sampled_flag_of_a_traceparent(value, flag):
    assert tracing.traceparent_sampled(value) is flag


def test_sample_rates_at_the_ends_always_and_never_record():
    assert all(tracing.sampled(1.0) for _ in range(100))
    assert not any(tracing.sampled(0.0) for _ in range(100))


async def test_nothing_is_recorded_under_an_unsampled_request(sink):
    token = tracing.activate_token(tracing.UNSAMPLED)
    try:
        assert not tracing.recording() and tracing.current_span() is None
        with tracing.span("inside") as span:
            assert span is None
    finally:
        tracing.reset_current(token)
    await tracing.collector().flush()
    assert sink.spans == []


async def test_metrics_recorded_on_a_span_reach_the_sinks_with_it(sink):
    with tracing.span("work") as span:
        tracing.record_metric(span, "rows", 3, "rows", at=1_000, table="t")
    await tracing.collector().flush()
    [finished] = sink.spans
    [event] = finished.metric_events()
    assert (event.trace_id, event.span_id, event.type) == (span.trace_id, span.span_id, "metric")
    assert (event.metric, event.value, event.unit, event.time_ns, event.attributes) == ("rows", 3, "rows", 1_000, {"table": "t"})


async def test_derived_metrics_are_worked_out_when_a_sink_asks(sink, monkeypatch):
    monkeypatch.setitem(tracing.DERIVED_METRICS, "duration",
                        lambda span: [("duration_ns", span.end_ns - span.start_ns, "ns", span.end_ns, {})])
    with tracing.span("work") as span:
        span.metrics = ("duration",)
        tracing.record_metric(span, "rows", 3, "rows", at=1_000)
    await tracing.collector().flush()
    [finished] = sink.spans
    assert [m[0] for m in tracing.span_metrics(finished)] == ["duration_ns", "rows"]
    [duration, _rows] = finished.metric_events()
    assert (duration.value, duration.time_ns) == (finished.end_ns - finished.start_ns, finished.end_ns)


def test_ids_are_lowercase_hex_of_the_w3c_widths():
    trace_ids = {tracing.new_trace_id() for _ in range(1000)}
    span_ids = {tracing.new_span_id() for _ in range(1000)}
    assert len(trace_ids) == len(span_ids) == 1000
    assert all(len(t) == 32 and int(t, 16) and t == t.lower() for t in trace_ids)
    assert all(len(s) == 16 and int(s, 16) and s == s.lower() for s in span_ids)


def test_trace_ids_sort_by_the_millisecond_they_were_made_in():
    before = time.time_ns() // 1_000_000
    first = tracing.new_trace_id()
    time.sleep(0.002)
    second, third = tracing.new_trace_id(), tracing.new_trace_id()
    after = time.time_ns() // 1_000_000
    assert first < second and second != third
    assert before <= int(first[:12], 16) < int(second[:12], 16) <= int(third[:12], 16) <= after


def test_span_ids_sort_by_the_millisecond_they_were_made_in_modulo_2_32():
    before = time.time_ns() // 1_000_000
    first = tracing.new_span_id()
    time.sleep(0.002)
    second = tracing.new_span_id()
    after = time.time_ns() // 1_000_000
    # the first 8 digits: the time in ms modulo 2^32 (taken from ``before``, so a wrap in between reads right)
    offsets = [(int(span_id[:8], 16) - before) % 2**32 for span_id in (first, second)]
    assert 0 <= offsets[0] < offsets[1] <= after - before


def test_span_ids_of_one_millisecond_differ_in_their_random_part():
    ids = [tracing.new_span_id() for _ in range(20_000)]
    random_parts = {span_id[8:] for span_id in ids}
    assert len(random_parts) == len(ids)  # a counter through a bijection: no repeat within 2^32 ids
    assert len({span_id[:8] for span_id in ids}) < len(ids)  # many share a millisecond


def _random_parts() -> list[str]:
    """600 span ids and the random part of 600 trace ids (after their 12 digits of time)."""
    return [tracing.new_span_id() for _ in range(600)] + [tracing.new_trace_id()[12:] for _ in range(600)]


def test_a_forked_process_makes_none_of_the_ids_its_parent_makes():
    tracing.new_span_id()  # the parent's random state has moved on before the fork
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its ids go up the pipe, then it leaves without pytest's teardown
        os.close(read)
        os.write(write, " ".join(_random_parts()).encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        child = set(pipe.read().split())
    os.waitpid(pid, 0)
    parent = set(_random_parts())
    assert len(child) == len(parent) == 1200
    assert not child & parent
