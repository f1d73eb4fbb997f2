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
