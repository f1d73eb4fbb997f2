"""stack/_spanrecord.c: a running span (``SpanRecord``) as Python sees it and as the encoder writes
it, with its ids, times and shared attributes held as machine values until read."""

from __future__ import annotations

import copy
import json
import pickle

import pytest

from providers.inline.telemetry.meta_reference.chunk_table import chunk_rows, encoded_chunk_rows
from stack.storage import JsonText
from stack import _spancore, tracing

from .test_spancore import Service, sink, spans_by_name, traced  # noqa: F401  (sink: a fixture)


def record(**attributes) -> tracing.SpanRecord:
    return tracing.SpanRecord.new("t" * 32, "a" * 16, None, "x", 5, attributes=attributes)


def test_a_record_is_a_sequence_of_the_finished_spans_fields_also_by_name():
    made = tracing.SpanRecord.new("t" * 32, "a" * 16, None, "x", 5, attributes={"k": 1}, metrics=("gen_ai",))
    assert len(made) == 11 and tuple(made) == ("t" * 32, "a" * 16, None, "x", 5, None, "ok", False, {"k": 1},
                                               ("gen_ai",), None)
    assert made[-1] is None and made[tracing.ATTRIBUTES] is made.attributes
    made.name, made.status, made[tracing.END] = "y", "error", 9
    assert (made.name, made.status, made.end_ns) == ("y", "error", 9)
    assert made.finished() == tracing.FinishedSpan("t" * 32, "a" * 16, None, "y", 5, 9, "error", False, {"k": 1},
                                                   ("gen_ai",), None)
    assert repr(made).startswith("SpanRecord(('" + "t" * 32)
    with pytest.raises(IndexError):
        made[11]
    with pytest.raises(TypeError):
        del made[0]
    with pytest.raises(AttributeError):
        made.trace_id = "other"
    with pytest.raises(TypeError, match="11 fields"):
        tracing.SpanRecord(("t", "s"))


def test_a_record_pickles_and_copies_as_its_fields():
    made = record(k=[1])
    made.end_ns = 9
    for again in (pickle.loads(pickle.dumps(made)), copy.deepcopy(made)):
        assert type(again) is tracing.SpanRecord and tuple(again) == tuple(made)
    assert copy.copy(made).attributes is made.attributes


def test_set_adds_an_attribute_and_replaces_one_already_there():
    made = record(k=1)
    made.set("k", 2)
    made.set("new", "v")
    assert made.attributes == {"k": 2, "new": "v"}


@pytest.mark.parametrize("added", [2, 10])  # beside the shared dict, and more than the span keeps there
async def test_a_traced_calls_span_shares_the_methods_attributes_and_adds_its_own(sink, added):  # noqa: F811
    def hook(span, args, kwargs, result):
        span.set("polystack.api", "replaced")  # a shared key: stored once, with the span's value
        for n in range(added):
            span.set(f"added.{n}", n)

    service = traced(Service(), on_result=hook)
    assert await service.answer("hi") == "hi"
    assert await service.answer("again") == "again"
    chunks = tracing.collector()._spans.take()
    stored = "".join(row[-1].text for chunk in chunks for row in encoded_chunk_rows(chunk, None))
    assert stored.count('"polystack.api"') == 2  # once a span, in the span store's JSON
    calls = [span for span in tracing.decode_chunks(chunks) if span[tracing.NAME] == "provider demo.answer"]
    assert len(calls) == 2
    for call in calls:  # the second call started from the method's attributes as they were
        assert call[tracing.ATTRIBUTES] == {"polystack.api": "replaced", "polystack.provider_id": "p",
                                            **{f"added.{n}": n for n in range(added)}}


def _rows_read(rows):
    """Span store rows as a reader sees them: the spans' JSON parsed."""
    return [(*row[:-1], json.loads(row[-1].text)) for row in rows]


def _asking(span, args, kwargs, result):
    span.set("question", args[0])


async def test_a_methods_shared_attributes_are_written_once_a_chunk_and_read_back_in_every_span(sink):  # noqa: F811
    service = traced(Service(), on_result=_asking)
    for n in range(3):
        assert await service.answer(f"q{n}") == f"q{n}"
    [chunk] = tracing.collector()._spans.take()
    spans = _spancore.decode(chunk)
    calls = [span[tracing.ATTRIBUTES] for span in spans if span[tracing.NAME] == "provider demo.answer"]
    assert calls == [{"polystack.api": "demo", "polystack.provider_id": "p", "question": f"q{n}"} for n in range(3)]
    # the same spans as tuples write their whole attribute dict every time
    assert chunk.startswith(b"PSB2") and len(chunk) < len(_spancore.encode(spans))
    made_in_c = _spancore.chunk_rows(chunk, None, JsonText)
    assert made_in_c is not None
    assert _rows_read(made_in_c) == _rows_read(chunk_rows(spans, None))


async def test_more_methods_than_a_chunk_remembers_still_read_back_their_own_attributes(sink):  # noqa: F811
    services = []
    for n in range(40):  # more shared dicts than a chunk remembers (32)
        service = Service()
        tracing.instrument(service, "demo", ["answer"], kind="provider", provider_id=f"p{n}", on_result=_asking)
        services.append(service)
    for again in range(2):
        for n, service in enumerate(services):
            await service.answer(f"{n}.{again}")
    chunks = tracing.collector()._spans.take()
    decoded = [_spancore.decode(chunk) for chunk in chunks]
    first_providers = {span[tracing.ATTRIBUTES]["polystack.provider_id"] for span in decoded[0]
                       if span[tracing.NAME] == "provider demo.answer"}
    assert len(first_providers) == 40  # one chunk held them all
    calls = [span[tracing.ATTRIBUTES] for spans in decoded for span in spans
             if span[tracing.NAME] == "provider demo.answer"]
    assert calls == [{"polystack.api": "demo", "polystack.provider_id": f"p{n}", "question": f"{n}.{again}"}
                     for again in range(2) for n in range(40)]
    for chunk, spans in zip(chunks, decoded):
        assert _rows_read(_spancore.chunk_rows(chunk, None, JsonText)) == _rows_read(chunk_rows(spans, None))


async def test_a_span_that_fails_to_encode_takes_back_the_shared_dict_it_wrote(sink):  # noqa: F811
    def hook(span, args, kwargs, result):
        span.set("question", "\ud800" if args[0] == "bad" else args[0])  # a lone surrogate has no UTF-8

    service = traced(Service(), on_result=hook)
    await service.answer("bad")  # its span is lost, never the call
    await service.answer("good")
    spans = [span for chunk in tracing.collector()._spans.take() for span in _spancore.decode(chunk)]
    calls = [span[tracing.ATTRIBUTES] for span in spans if span[tracing.NAME] == "provider demo.answer"]
    assert calls == [{"polystack.api": "demo", "polystack.provider_id": "p", "question": "good"}]


def test_a_chunk_of_the_first_format_still_reads_back():
    # span logs keep chunks across versions: b"PSB1" chunks (no shared dicts) decode and make rows
    spans = [tuple(record(k=n, name="v").finished()) for n in range(3)]
    first_format = b"PSB1" + _spancore.encode(spans)[4:]
    assert _spancore.decode(first_format) == spans
    assert _rows_read(_spancore.chunk_rows(first_format, None, JsonText)) == _rows_read(chunk_rows(spans, None))


async def test_a_cut_or_garbled_chunk_with_shared_dicts_gives_a_value_error_never_a_crash(sink):  # noqa: F811
    service = traced(Service(), on_result=_asking)
    for n in range(2):
        await service.answer(f"q{n}")
    [chunk] = tracing.collector()._spans.take()
    variants = [chunk[:cut] for cut in range(len(chunk))]
    variants += [chunk[:at] + bytes([chunk[at] ^ flip]) + chunk[at + 1:]
                 for at in range(8, len(chunk)) for flip in (0x01, 0x80, 0xff)]
    for variant in variants:
        for read in (_spancore.decode, lambda c: _spancore.chunk_rows(c, None, JsonText)):
            try:
                read(variant)
            except (ValueError, UnicodeDecodeError, EOFError, TypeError):
                pass


async def test_ids_read_in_python_are_the_ones_the_children_and_the_buffer_get(sink):  # noqa: F811
    service = traced(Service())
    with tracing.span("request") as request:
        root_id = request.span_id
        started = tracing.start_upstream("POST", "http://up/v1", "up")
        upstream, traceparent = started
        assert upstream.span_id == upstream.span_id and len(upstream.span_id) == 16  # made once, then kept
        assert traceparent == f"00-{request.trace_id}-{upstream.span_id}-01"
        tracing.finish_upstream(upstream, 201)
        await service.answer("hi")
    spans = await spans_by_name(sink)
    assert spans["upstream POST"].parent_span_id == root_id == spans["provider demo.answer"].parent_span_id
    assert spans["inside"].parent_span_id == spans["provider demo.answer"].span_id
    assert spans["upstream POST"].span_id == upstream.span_id
    assert spans["upstream POST"].attributes == {"http.request.method": "POST", "url.full": "http://up/v1",
                                                 "polystack.upstream": "up", "http.response.status_code": 201}
    assert spans["upstream POST"].end_ns >= spans["upstream POST"].start_ns > 0


async def test_an_upstream_calls_traceparent_under_a_trace_id_given_by_a_caller(sink):  # noqa: F811
    record = tracing.start_span("posted", parent=("t-given", "p-given"))
    token = tracing.activate_token(record)
    try:
        upstream, traceparent = tracing.start_upstream("GET", "http://up/v1", "up")
    finally:
        tracing.reset_current(token)
    assert traceparent == f"00-t-given-{upstream.span_id}-01" and upstream.parent_span_id == record.span_id


def test_a_span_that_fails_to_encode_takes_back_the_strings_it_made_remembered():
    buffer = _spancore.SpanBuffer(10)
    key = "".join(["a-key-", "made-here"])  # one object, held twice: the encoder remembers it
    broken = record(**{key: "fine", "text": "\ud800"})  # a lone surrogate has no UTF-8
    with pytest.raises(UnicodeEncodeError):
        buffer.append(broken)
    buffer.append(record(**{key: 1}))
    buffer.append(record(**{key: 2}))
    (chunk,) = buffer.take()
    assert [span[tracing.ATTRIBUTES] for span in _spancore.decode(chunk)] == [{key: 1}, {key: 2}]
