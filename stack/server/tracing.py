"""Each HTTP request is a trace: a root span, its id in the ``X-Trace-Id`` response header.

A W3C ``traceparent`` request header puts the request's span into the caller's
trace, when its sampled flag is set (unset: the request is not recorded). Requests
without one are recorded at the telemetry provider's ``sample_rate``. With no
telemetry provider configured nothing is done (one global lookup).
The telemetry routes, /v1/health and the console's static files are not traced:
reading traces, a load balancer's health checks or loading the console's page
would otherwise fill the span store.

``ServerMiddleware`` (middleware.py) calls ``start_root`` as a request comes in and
``RootSpan.finish`` when it is over, which adds the status and the route.
"""

from __future__ import annotations

import operator
import time

from .. import tracing
from ..console import is_console_path

TRACEPARENT_HEADER = b"traceparent"
TRACE_ID_HEADER = b"x-trace-id"
UNTRACED_PREFIXES = ("/v1/telemetry/", "/v1/health")


def untraced(path: str) -> bool:
    return path.startswith(UNTRACED_PREFIXES) or is_console_path(path)


class RootSpan(tuple):
    """A request's root span while it runs: (record, context token, the ``X-Trace-Id`` header), a
    tuple made in one C call (``record`` None: the request is not sampled)."""

    __slots__ = ()

    record = property(operator.itemgetter(0))
    token = property(operator.itemgetter(1))
    header = property(operator.itemgetter(2))

    def finish(self, status: int | None, error: BaseException | None, scope) -> None:
        record, token, _ = self
        tracing.reset_current(token)
        if record is None:
            return
        attributes = record[tracing.ATTRIBUTES]
        if status is not None:
            attributes["http.response.status_code"] = status
            if status >= 500:
                record[tracing.STATUS] = "error"
        route = scope.get("route")
        route_path = getattr(route, "path", None) if route is not None else None
        if route_path:
            attributes["http.route"] = route_path
            record[tracing.NAME] = f"{scope['method']} {route_path}"
        else:
            record[tracing.NAME] = f"{scope['method']} {scope['path']}"
        tracing.finish_span(record, error)


def start_root(scope, headers: dict[bytes, bytes]) -> RootSpan | None:
    """The request's root span, made current; None when tracing is off or the path is not traced.
    ``headers``: the request's headers as a dict (the middleware makes it once for everyone)."""
    collector = tracing.collector()
    if collector is None:
        return None
    path = scope["path"]
    skip = _untraced_paths.get(path)
    if skip is None:
        skip = untraced(path)
        if len(_untraced_paths) < MAX_REMEMBERED_PATHS:  # clients choose paths: the memo is bounded
            _untraced_paths[path] = skip
    if skip:
        return None
    parent = None
    value = headers.get(TRACEPARENT_HEADER)
    if value is not None:
        parent = tracing.parse_traceparent(value)
        if parent is not None and not tracing.traceparent_sampled(value):
            parent = False  # the caller does not record this trace: neither do we
    if parent is False or (parent is None and collector.sample_rate < 1 and not tracing.sampled(collector.sample_rate)):
        return RootSpan((None, tracing.activate_token(tracing.UNSAMPLED), None))
    trace_id, parent_id = (tracing.new_trace_id(), None) if parent is None else parent
    # this server's first span of the trace (root), even under a caller's traceparent; its name
    # is given when it finishes (by then the route is known)
    record = tracing.SpanRecord((trace_id, tracing.new_span_id(), parent_id, "", time.time_ns(), None, "ok", True,
                                 {"http.request.method": scope["method"], "url.path": path}, None, None))
    return RootSpan((record, tracing.activate_token(record), (TRACE_ID_HEADER, trace_id.encode())))


#: whether a request path is traced, by path (most requests go to a few paths)
_untraced_paths: dict[str, bool] = {}
MAX_REMEMBERED_PATHS = 1024
