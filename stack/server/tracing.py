"""Each HTTP request is a trace: a root span, its id in the ``X-Trace-Id`` response header.

A W3C ``traceparent`` request header puts the request's span into the caller's
trace, when its sampled flag is set (unset: the request is not recorded). Requests
without one are recorded at the telemetry provider's ``sample_rate``. With no
telemetry provider configured the middleware passes requests straight through.
The telemetry routes, /v1/health and the console's static files are not traced:
reading traces, a load balancer's health checks or loading the console's page
would otherwise fill the span store.
"""

from __future__ import annotations

import time

from .. import tracing
from ..console import is_console_path

TRACEPARENT_HEADER = b"traceparent"
TRACE_ID_HEADER = b"x-trace-id"
UNTRACED_PREFIXES = ("/v1/telemetry/", "/v1/health")


def untraced(path: str) -> bool:
    return path.startswith(UNTRACED_PREFIXES) or is_console_path(path)


class TracingMiddleware:
    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        collector = tracing.collector()
        if scope["type"] != "http" or collector is None or untraced(scope["path"]):
            await self.app(scope, receive, send)
            return
        parent = None
        for name, value in scope["headers"]:
            if name == TRACEPARENT_HEADER:
                parent = tracing.parse_traceparent(value)
                if parent is not None and not tracing.traceparent_sampled(value):
                    parent = False  # the caller does not record this trace: neither do we
                break
        if parent is False or (parent is None and not tracing.sampled(collector.sample_rate)):
            token = tracing.activate_token(tracing.UNSAMPLED)
            try:
                await self.app(scope, receive, send)
            finally:
                tracing.reset_current(token)
            return
        method, path = scope["method"], scope["path"]
        if parent is None:
            trace_id, parent_id = tracing.new_trace_id(), None
        else:
            trace_id, parent_id = parent
        # this server's first span of the trace (root), even under a caller's traceparent
        record = tracing.SpanRecord(trace_id, tracing.new_span_id(), parent_id, f"{method} {path}", time.time_ns(), None,
                                    {"http.request.method": method, "url.path": path}, root=True)
        trace_header = (TRACE_ID_HEADER, trace_id.encode())

        async def send_with_trace(message) -> None:
            if message["type"] == "http.response.start":
                status = message["status"]
                record.attributes["http.response.status_code"] = status
                if status >= 500:
                    record.status = "error"
                message["headers"] = [*message.get("headers", ()), trace_header]
            await send(message)

        error = None
        token = tracing.activate_token(record)
        try:
            await self.app(scope, receive, send_with_trace)
        except BaseException as exc:
            error = exc
            raise
        finally:
            tracing.reset_current(token)
            route = scope.get("route")
            if route is not None and getattr(route, "path", None):
                record.attributes["http.route"] = route.path
                record.name = f"{method} {route.path}"
            tracing.finish_span(record, error)
