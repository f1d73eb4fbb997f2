"""stack/_spancore.c: traced methods (``Traced``, the awaitable each call returns) and ``finish``."""

from __future__ import annotations

import asyncio
import collections.abc
import inspect
from types import SimpleNamespace

import pytest

from stack import _spancore, request_context, tracing
from stack.server import tracing as server_tracing

from .test_tracing import ListSink, collecting


@pytest.fixture
async def sink():
    async with collecting(max_buffer=1000) as sink:
        yield sink


class Service:
    """A provider whose calls wait a turn of the event loop, as an upstream call would."""

    def __init__(self) -> None:
        self.inner_parents: list[str | None] = []

    async def answer(self, question: str, *, loud: bool = False) -> str:
        """Answers a question."""
        await asyncio.sleep(0)
        with tracing.span("inside") as inside:
            self.inner_parents.append(inside.parent_span_id if inside is not None else None)
        return question.upper() if loud else question

    async def fail(self) -> None:
        await asyncio.sleep(0)
        raise KeyError("no such thing")

    async def wait(self, event: asyncio.Event) -> None:
        await event.wait()


def traced(service: Service, on_result=None) -> Service:
    tracing.instrument(service, "demo", ["answer", "fail", "wait"], kind="provider", provider_id="p",
                       on_result=on_result)
    return service


async def spans_by_name(sink: ListSink) -> dict[str, tracing.FinishedSpan]:
    await tracing.collector().flush()
    return {span.name: span for span in sink.spans}


async def test_a_call_is_a_span_under_the_current_one_and_parents_what_runs_inside(sink):
    calls = []
    service = traced(Service(), on_result=lambda record, args, kwargs, result: calls.append((args, kwargs, result)))
    with tracing.span("request") as request:
        assert await service.answer("hi", loud=True) == "HI"
        assert tracing.current_span() is request  # the call's span is current only while it runs
    spans = await spans_by_name(sink)
    call = spans["provider demo.answer"]
    assert (call.trace_id, call.parent_span_id) == (request.trace_id, request.span_id)
    assert call.attributes == {"polystack.api": "demo", "polystack.provider_id": "p"}
    assert call.status == "ok" and call.end_ns >= call.start_ns
    assert service.inner_parents == [call.span_id] and spans["inside"].parent_span_id == call.span_id
    assert calls == [(("hi",), {"loud": True}, "HI")]


async def test_a_failing_call_ends_its_span_with_the_error_and_raises_it(sink):
    service = traced(Service())
    with tracing.span("request") as request:
        with pytest.raises(KeyError, match="no such thing"):
            await service.fail()
        assert tracing.current_span() is request
    failed = (await spans_by_name(sink))["provider demo.fail"]
    assert failed.status == "error" and failed.attributes["error.type"] == "KeyError"


async def test_a_cancelled_call_ends_its_span_cancelled(sink):
    service = traced(Service())
    task = asyncio.create_task(service.wait(asyncio.Event()))
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    cancelled = (await spans_by_name(sink))["provider demo.wait"]
    assert cancelled.status == "error" and cancelled.attributes["error.type"] == "CancelledError"


async def test_a_call_made_in_one_task_and_awaited_in_others_takes_the_awaiting_span(sink):
    service = traced(Service())

    async def under(name: str, call):
        with tracing.span(name):
            return await call

    with tracing.span("request"):
        calls = [service.answer("a"), service.answer("b")]  # made here, awaited under each span below
        assert await asyncio.gather(under("first", calls[0]), under("second", calls[1])) == ["a", "b"]
    spans = await spans_by_name(sink)
    parents = sorted(s.parent_span_id for s in sink.spans if s.name == "provider demo.answer")
    assert parents == sorted([spans["first"].span_id, spans["second"].span_id])


async def test_a_hook_that_fails_never_fails_the_call(sink):
    def broken(record, args, kwargs, result):
        raise RuntimeError("hook bug")

    service = traced(Service(), on_result=broken)
    assert await service.answer("still here") == "still here"
    assert (await spans_by_name(sink))["provider demo.answer"].status == "ok"


async def test_closing_a_started_call_ends_its_span_and_an_unstarted_one_records_nothing(sink):
    service = traced(Service())
    started = service.wait(asyncio.Event())
    started.send(None)  # the first step: the span starts, then the call waits
    started.close()
    service.answer("never").close()
    spans = await spans_by_name(sink)
    assert spans["provider demo.wait"].attributes["error.type"] == "GeneratorExit"
    assert "provider demo.answer" not in spans


async def test_a_call_is_a_coroutine_to_asyncio_and_cannot_be_awaited_twice(sink):
    service = traced(Service())
    call = service.answer("once")
    assert isinstance(call, collections.abc.Coroutine)
    assert await asyncio.create_task(call) == "once"
    with pytest.raises(RuntimeError, match="already awaited"):
        await call


async def test_tracing_off_a_call_is_the_methods_own_coroutine():
    service = traced(Service())
    call = service.answer("plain")
    assert inspect.iscoroutine(call)
    assert await call == "plain" and service.inner_parents == [None]


def test_a_traced_method_keeps_the_methods_name_signature_and_documentation():
    service = traced(Service())
    assert service.answer.__name__ == "answer" and service.answer.__doc__ == "Answers a question."
    assert service.answer.__traced__ and service.answer.span_name == "provider demo.answer"
    assert inspect.signature(service.answer) == inspect.signature(Service().answer)


async def test_finish_buffers_the_span_and_refuses_what_is_not_one(sink):
    record = tracing.start_span("by hand")
    _spancore.finish(record, ValueError("bad"))
    spans = await spans_by_name(sink)
    assert spans["by hand"].status == "error" and spans["by hand"].attributes == {"error.type": "ValueError"}
    with pytest.raises(TypeError, match="not a running span"):
        _spancore.finish(["too", "short"])


def start_request(parent=None, attributes=None):
    """A request's root span, made current as the middleware does: with the request's values."""
    root = _spancore.start_root(parent, {} if attributes is None else attributes, b"x-trace-id")
    return root, request_context.set_request("request id", None, root[0])


def finish_request(root, token, status=200, **scope) -> None:
    request_context.reset_request(token)
    _spancore.finish_root(root, status, None, {"method": "POST", "path": "/v1/x", **scope})


async def test_a_root_span_joins_the_callers_trace_and_fails_on_a_server_error(sink):
    caller = ("0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331")
    root, token = start_request(caller, {"url.path": "/v1/x"})
    assert root[2] == (b"x-trace-id", caller[0].encode()) and tracing.current_span() is root[0]
    assert request_context.request_id() == "request id"
    finish_request(root, token, 503, route=SimpleNamespace(path="/v1/{name}"))
    assert tracing.current_span() is None and request_context.request_id() is None
    [span] = sink.spans if (await tracing.collector().flush()) is None else []
    assert (span.trace_id, span.parent_span_id, span.root) == (*caller, True)
    assert (span.name, span.status) == ("POST /v1/{name}", "error")
    assert span.attributes == {"url.path": "/v1/x", "http.response.status_code": 503, "http.route": "/v1/{name}"}
    with pytest.raises(TypeError, match="start_root"):
        _spancore.start_root(("only a trace id",), {}, b"x-trace-id")


async def test_an_upstream_call_is_a_child_span_whose_traceparent_names_it(sink):
    root, token = start_request()
    span, traceparent = tracing.start_upstream("POST", "http://up:8000/v1/chat/completions", "vllm")
    assert traceparent == f"00-{span[tracing.TRACE_ID]}-{span[tracing.SPAN_ID]}-01"
    tracing.finish_upstream(span, 201)
    finish_request(root, token, path="/v1/chat/completions")
    spans = await spans_by_name(sink)
    upstream, request = spans["upstream POST"], spans["POST /v1/chat/completions"]
    assert (upstream.trace_id, upstream.parent_span_id) == (request.trace_id, request.span_id)
    assert upstream.attributes == {"http.request.method": "POST", "url.full": "http://up:8000/v1/chat/completions",
                                   "polystack.upstream": "vllm", "http.response.status_code": 201}
    with pytest.raises(TypeError, match="finish_upstream"):
        tracing.finish_upstream(["not", "a", "span"], 200)


async def test_roots_and_upstream_calls_of_many_paths_and_urls_keep_their_own_attributes(sink):
    # more paths and URLs than the attribute dicts kept for them to share (8 each), three times over:
    # the first time a path takes the Python path, then start_request in C
    expected_roots, expected_upstreams = [], []
    for _ in range(3):
        for n in range(12):
            method, path = ("GET" if n % 2 else "POST"), f"/v1/models/m{n}"
            scope = {"type": "http", "method": method, "path": path, "headers": []}
            root = server_tracing.start_request(scope, {})
            token = request_context.set_request("request id", None, root[0])
            url = "http://up/v1/" + f"m{n}"  # a new str every call, as an upstream client makes it
            upstream, _traceparent = tracing.start_upstream(method, url, f"up{n % 3}")
            tracing.finish_upstream(upstream, 200 + n)
            request_context.reset_request(token)
            server_tracing.finish_root(root, 200, None, scope)
            expected_roots.append({"http.request.method": method, "url.path": path, "http.response.status_code": 200})
            expected_upstreams.append({"http.request.method": method, "url.full": url, "polystack.upstream": f"up{n % 3}",
                                       "http.response.status_code": 200 + n})
    await tracing.collector().flush()
    assert [span.attributes for span in sink.spans if span.root] == expected_roots
    assert [span.attributes for span in sink.spans if span.name.startswith("upstream ")] == expected_upstreams


class Layers:
    """A router-like method calling a provider-like one, which calls an upstream: the proxy's shape."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, object, object]] = []

    async def route(self, question: str) -> str:
        self.seen.append(("route", tracing.current_span(), tracing._current.get()))
        return await self.provide(question)

    async def provide(self, question: str) -> str:
        await asyncio.sleep(0)
        self.seen.append(("provide", tracing.current_span(), tracing._current.get()))
        span, _traceparent = tracing.start_upstream("POST", "http://up/v1/chat/completions", "up")
        tracing.finish_upstream(span, 200)
        with tracing.span("inside"):
            self.seen.append(("inside", tracing.current_span(), tracing._current.get()))
        return question

    async def fan_out(self) -> list[str]:
        self.seen.append(("fan_out", tracing.current_span(), tracing._current.get()))
        in_thread = await asyncio.to_thread(tracing.current_span)
        assert in_thread is tracing.current_span()  # a thread the call waits for runs in its span
        return await asyncio.gather(self.provide("a"), self.provide("b"))


def layered() -> Layers:
    layers = Layers()
    tracing.instrument(layers, "demo", ["route", "provide", "fan_out"], kind="provider")
    return layers


async def test_calls_in_the_requests_task_nest_under_its_root_without_setting_the_context_variable(sink):
    layers = layered()
    root, token = start_request()
    assert await layers.route("q") == "q"
    assert tracing.current_span() is root[0]
    finish_request(root, token)
    assert tracing.current_span() is None
    spans = await spans_by_name(sink)
    request, route, provide = spans["POST /v1/x"], spans["provider demo.route"], spans["provider demo.provide"]
    assert route.parent_span_id == request.span_id and provide.parent_span_id == route.span_id
    assert spans["upstream POST"].parent_span_id == provide.span_id
    assert spans["inside"].parent_span_id == provide.span_id
    # each call's span is current inside it, while no context variable was set for it: the calls of
    # the request's task hang under its root (stack/_spancore.c)
    [(_, route_current, route_var), (_, provide_current, provide_var), (_, inside_current, inside_var)] = layers.seen
    assert (route_current[tracing.SPAN_ID], provide_current[tracing.SPAN_ID]) == (route.span_id, provide.span_id)
    assert route_var is None and provide_var is None
    assert inside_current is inside_var and inside_current[tracing.SPAN_ID] == spans["inside"].span_id


async def test_tasks_a_call_starts_take_its_span_and_nest_their_own_calls(sink):
    layers = layered()
    root, token = start_request()
    assert await layers.fan_out() == ["a", "b"]  # two tasks whose calls interleave (each waits a turn)
    finish_request(root, token)
    await tracing.collector().flush()
    by_id = {span.span_id: span for span in sink.spans}
    fan_out = next(span for span in sink.spans if span.name == "provider demo.fan_out")
    provides = [span for span in sink.spans if span.name == "provider demo.provide"]
    assert len(provides) == 2 and all(span.parent_span_id == fan_out.span_id for span in provides)
    for name in ("upstream POST", "inside"):  # each under its own task's call, not the other's
        children = [span for span in sink.spans if span.name == name]
        assert sorted(span.parent_span_id for span in children) == sorted(span.span_id for span in provides)
    assert by_id[fan_out.parent_span_id].name == "POST /v1/x"


async def test_a_call_nobody_finishes_is_current_no_more_once_it_is_gone(sink):
    layers = layered()
    root, token = start_request()
    call = layers.provide("never finished")
    call.send(None)  # its first step: its span starts and hangs under the root, then it waits
    assert tracing.current_span()[tracing.NAME] == "provider demo.provide"
    del call
    assert tracing.current_span() is root[0]
    finish_request(root, token)
    await tracing.collector().flush()
    assert [span.name for span in sink.spans] == ["POST /v1/x"]


async def test_an_upstream_call_of_a_request_sampling_left_out_has_no_span(sink):
    token = tracing.activate_token(tracing.UNSAMPLED)
    try:
        assert tracing.start_upstream("GET", "http://up/v1/models", "up") is None
    finally:
        tracing._current.reset(token)
    await tracing.collector().flush()
    assert sink.spans == []


def test_tracing_off_an_upstream_call_has_no_span():
    assert tracing.collector() is None
    assert tracing.start_upstream("GET", "http://up/v1/models", "up") is None


def test_inference_attributes_read_the_model_and_usage_under_the_names_given():
    hook = _spancore.InferenceAttributes(model="m", response_model="rm", input_tokens="in", output_tokens="out",
                                         derived=("gen_ai",))
    by_id, by_request = tracing.SpanRecord.new("t", "s", None, "x", 0), tracing.SpanRecord.new("t", "s", None, "x", 0)
    result = SimpleNamespace(model="served", usage=SimpleNamespace(prompt_tokens=3, completion_tokens=None))
    hook(by_id, (), {"model_id": "llama"}, None)  # a failed call: no result, the request's model still
    hook(by_request, (SimpleNamespace(model="llama"),), {}, result)
    assert by_id.attributes == {"m": "llama"} and by_id.metrics == ("gen_ai",)
    assert by_request.attributes == {"m": "llama", "rm": "served", "in": 3}
    with pytest.raises(TypeError, match="InferenceAttributes"):
        hook(by_id, [], {}, None)


def test_inference_attributes_read_fields_as_getattr_would():
    """The hook reads a field from the object's __dict__ only where Python's own lookup would find it there."""
    class Shadowed:  # a property on the type comes before the instance's __dict__
        model = property(lambda self: "from-property")

    class Custom:  # a __getattribute__ of its own decides everything
        def __getattribute__(self, name):
            return "from-getattribute" if name == "model" else object.__getattribute__(self, name)

    class Fallback:  # a __getattr__ answers what neither the type nor __dict__ has (pydantic's raises)
        def __getattr__(self, name):
            if name == "model":
                return "from-getattr"
            raise AttributeError(name)

    shadowed, custom, fallback = Shadowed(), Custom(), Fallback()
    shadowed.__dict__["model"] = "from-dict"
    custom.__dict__["model"] = "from-dict"
    hook = _spancore.InferenceAttributes(model="m", response_model="rm", input_tokens="in")
    seen = []
    for request in (shadowed, custom, fallback, SimpleNamespace(model="plain")):
        record = tracing.SpanRecord.new("t", "s", None, "x", 0)
        hook(record, (request,), {}, Fallback())  # a result whose usage __getattr__ refuses: no usage
        seen.append(record.attributes)
    assert seen == [{"m": "from-property"}, {"m": "from-getattribute"}, {"m": "from-getattr"}, {"m": "plain"}]
