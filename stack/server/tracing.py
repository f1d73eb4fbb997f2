"""Each HTTP request is a trace: a root span, its id in the ``X-Trace-Id`` response header.

A W3C ``traceparent`` request header puts the request's span into the caller's
trace, when its sampled flag is set (unset: the request is not recorded). Requests
without one are recorded at the telemetry provider's ``sample_rate``. With no
telemetry provider configured nothing is done (one global lookup).
The telemetry routes, /v1/health and the console's static files are not traced:
reading traces, a load balancer's health checks or loading the console's page
would otherwise fill the span store.

``ServerMiddleware`` (middleware.py) calls ``start_request`` as a request comes in and
``finish_root`` when it is over, which adds the status and the route (both in C:
stack/_spancore.c). ``start_request`` serves the common case itself (a path known to be
traced, no ``traceparent``, every request sampled) and hands the others to ``start_root``.
"""

from __future__ import annotations

from .. import _spancore, tracing
from ..console import is_console_path

TRACEPARENT_HEADER = b"traceparent"
TRACE_ID_HEADER = b"x-trace-id"
UNTRACED_PREFIXES = ("/v1/telemetry/", "/v1/health")


def untraced(path: str) -> bool:
    return path.startswith(UNTRACED_PREFIXES) or is_console_path(path)


#: a request's root span while it runs: (record, None, the ``X-Trace-Id`` header), made by
#: ``_spancore.start_root`` in C and made current by the request's values (``request_context.set_request``,
#: which the middleware calls anyway: one context variable set for both); (None, the context token
#: of ``UNSAMPLED`` made current, None): the request is not sampled
RootSpan = tuple


#: ``finish_root(root, status, error, scope)``: the request is over; its span gets the status and
#: the route (its name "<method> <route>", or "<method> <path>" without one)
finish_root = _spancore.finish_root


def start_root(scope, headers: dict[bytes, bytes]) -> RootSpan | None:
    """The request's root span (``RootSpan``); None when tracing is off or the path is not traced.
    ``headers``: the request's headers as a dict (the middleware makes it once for everyone)."""
    collector = tracing.collector()
    if collector is None:
        return None
    path = scope["path"]
    skip = _untraced_paths.get(path)
    if skip is None:
        skip = bool(untraced(path))  # a bool: start_request in C takes the memo's False as "traced"
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
        return None, tracing.activate_token(tracing.UNSAMPLED), None
    # this server's first span of the trace (root), even under a caller's traceparent; its name
    # is given when it finishes (by then the route is known)
    return _spancore.start_root(parent, {"http.request.method": scope["method"], "url.path": path}, TRACE_ID_HEADER)


#: whether a request path is traced, by path (most requests go to a few paths)
_untraced_paths: dict[str, bool] = {}
MAX_REMEMBERED_PATHS = 1024

#: ``start_request(scope, headers)``: as ``start_root``, in C for the common case
start_request = _spancore.start_request
_spancore.configure_requests(_untraced_paths, start_root, TRACE_ID_HEADER, TRACEPARENT_HEADER)
