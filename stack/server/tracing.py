"""Each HTTP request is a trace: a root span, its id in the ``X-Trace-Id`` response header.

A W3C ``traceparent`` request header puts the request's span into the caller's
trace. With no telemetry provider configured the middleware passes requests
straight through. The telemetry routes and /v1/health are not traced: reading
traces, or a load balancer's health checks, would otherwise fill the span store.
"""

from __future__ import annotations

from .. import tracing

TRACEPARENT_HEADER = b"traceparent"
TRACE_ID_HEADER = b"x-trace-id"
UNTRACED_PREFIXES = ("/v1/telemetry/", "/v1/health")


class TracingMiddleware:
    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or not tracing.enabled() or scope["path"].startswith(UNTRACED_PREFIXES):
            await self.app(scope, receive, send)
            return
        parent = None
        for name, value in scope["headers"]:
            if name == TRACEPARENT_HEADER:
                parent = tracing.parse_traceparent(value)
                break
        method, path = scope["method"], scope["path"]
        record = tracing.start_span(f"{method} {path}", {"http.request.method": method, "url.path": path},
                                    parent=parent)
        record.root = True  # this server's first span of the trace, even under a caller's traceparent
        trace_header = (TRACE_ID_HEADER, record.trace_id.encode())

        async def send_with_trace(message) -> None:
            if message["type"] == "http.response.start":
                record.set("http.response.status_code", message["status"])
                if message["status"] >= 500:
                    record.status = "error"
                message["headers"] = [*message.get("headers", []), trace_header]
            await send(message)

        error = None
        try:
            with tracing.activate(record):
                await self.app(scope, receive, send_with_trace)
        except BaseException as exc:
            error = exc
            raise
        finally:
            route = scope.get("route")
            if route is not None and getattr(route, "path", None):
                record.set("http.route", route.path)
                record.name = f"{method} {route.path}"
            tracing.finish_span(record, error)
