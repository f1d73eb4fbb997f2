"""stack/server/tracing.py: which requests get a root span, and what it records."""

from __future__ import annotations

import pytest

from stack import tracing
from stack.server import tracing as server_tracing


@pytest.fixture
def collector():
    collector = tracing.Collector([])
    tracing.install(collector)
    yield collector
    tracing.install(None)


def _scope(path, headers=()):
    return {"type": "http", "method": "GET", "path": path, "headers": list(headers)}


def _root(path):
    scope = _scope(path)
    root = server_tracing.start_root(scope, dict(scope["headers"]))
    if root is not None:
        server_tracing.finish_root(root, 200, None, _scope(path))
    return root


def test_many_distinct_paths_keep_the_untraced_memo_bounded(collector, monkeypatch):
    monkeypatch.setattr(server_tracing, "_untraced_paths", {})
    monkeypatch.setattr(server_tracing, "MAX_REMEMBERED_PATHS", 8)
    for n in range(20):
        assert _root(f"/v1/models/m{n}") is not None
        assert _root(f"/v1/telemetry/traces/t{n}") is None  # past the bound, still worked out
    assert len(server_tracing._untraced_paths) == 8
    assert _root("/v1/health") is None and _root("/console/app.js") is None


def test_a_root_span_without_a_route_is_named_by_method_and_path(collector):
    _root("/v1/nowhere")
    [span] = map(tracing.named_span, collector._spans)
    assert (span.name, span.root, span.attributes["url.path"]) == ("GET /v1/nowhere", True, "/v1/nowhere")
    assert span.attributes["http.response.status_code"] == 200


def _finished(collector):
    return list(map(tracing.named_span, collector._spans))


@pytest.mark.parametrize("path", ["/v1/models", "/v1/chat/completions"])
def test_start_request_records_what_start_root_records(collector, monkeypatch, path):
    monkeypatch.setattr(server_tracing, "_untraced_paths", {})
    server_tracing._spancore.configure_requests(server_tracing._untraced_paths, server_tracing.start_root,
                                                server_tracing.TRACE_ID_HEADER, server_tracing.TRACEPARENT_HEADER)
    try:
        roots = []
        for make in (server_tracing.start_root, server_tracing.start_request, server_tracing.start_request):
            scope = _scope(path)  # the second start_request finds the path in the memo: made in C
            root = make(scope, {})
            assert root[2] == (b"x-trace-id", root[0][tracing.TRACE_ID].encode())
            server_tracing.finish_root(root, 200, None, scope)
            roots.append(root)
        assert server_tracing._untraced_paths == {path: False}
        spans = _finished(collector)
        assert len({s.trace_id for s in spans}) == 3
        assert {(s.name, s.root, s.parent_span_id, tuple(sorted(s.attributes.items()))) for s in spans} == {
            (f"GET {path}", True, None, (("http.request.method", "GET"), ("http.response.status_code", 200),
                                         ("url.path", path)))}
    finally:
        server_tracing._spancore.configure_requests(
            server_tracing._untraced_paths, server_tracing.start_root, server_tracing.TRACE_ID_HEADER,
            server_tracing.TRACEPARENT_HEADER)


def test_start_request_leaves_the_other_cases_to_start_root(collector):
    caller = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    for _ in range(2):  # the path is in the memo the second time: the traceparent still counts
        scope = _scope("/v1/models", [(b"traceparent", caller.encode())])
        root = server_tracing.start_request(scope, dict(scope["headers"]))
        server_tracing.finish_root(root, 200, None, scope)
    assert {(s.trace_id, s.parent_span_id) for s in _finished(collector)} == {
        ("0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331")}
    scope = _scope("/v1/health")
    assert server_tracing.start_request(scope, {}) is None and server_tracing.start_request(scope, {}) is None
    collector.sample_rate = 0.0
    scope = _scope("/v1/models")
    record, token, header = server_tracing.start_request(scope, {})
    assert (record, header) == (None, None) and tracing._current.get() is tracing.UNSAMPLED
    server_tracing.finish_root((record, token, header), 200, None, scope)
    assert tracing._current.get() is None and len(_finished(collector)) == 2


def test_start_request_with_tracing_off_is_none():
    assert tracing.collector() is None
    assert server_tracing.start_request(_scope("/v1/models"), {}) is None
