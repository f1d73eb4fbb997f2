"""Every request's plumbing in one pure-ASGI middleware, and the lean routes served from it.

A proxied request is fast enough that each ASGI layer around it shows in a
profile (a call, a closure per wrapped ``send`` and ``receive``), so what used
to be four middlewares is one pass here, in this order:

- tracing: the request's root span, its id in ``X-Trace-Id`` (``tracing``);
- the telemetry query strings of llama-stack-client 0.1.0 rewritten (``client_compat``);
- ``X-Request-ID`` on every response; API keys (401) when configured;
  ``X-LlamaStack-Provider-Data`` for providers; bodies over ``max_body`` refused
  (413) before they are read, or as they arrive when chunked;
- a client that goes away cancels its request's work (POST and the like);
- an unhandled error becomes a logged 500 naming the request id.

Then the request goes to ``LeanRoutes`` when it is for one of the lean routes
without path parameters (the OpenAI-compatible ones among them), else to the
FastAPI application's own router and exception handlers.
"""

from __future__ import annotations

import asyncio
import hmac
import inspect
import json
import logging
import os
import random
from typing import Any, Iterable

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.routing import Match

from ..console import is_console_path
from ..request_context import reset_request, set_request
from ._json import dumps
from .client_compat import PREFIX as TELEMETRY_PREFIX
from .client_compat import rewrite_query
from .errors import error_body, http_error_type, internal_error_body
from .tracing import RootSpan, finish_root, start_request

log = logging.getLogger(__name__)

PROVIDER_DATA_HEADER = b"x-llamastack-provider-data"
REQUEST_ID_HEADER = b"x-request-id"
OPEN_PATHS = frozenset({"/v1/health"})
#: methods whose requests carry no body: nothing to count, no disconnect to watch for
_BODILESS = frozenset({"GET", "HEAD", "DELETE", "OPTIONS"})
_UNWATCHED = frozenset({"GET", "HEAD", "OPTIONS"})


def _open(path: str) -> bool:
    """Paths answered without an API key: health, and the console's page and static files
    (they hold no data; every call the console makes for data carries the key)."""
    return path in OPEN_PATHS or is_console_path(path)


_random = random.Random()  # request ids need to be unique, not secret: no syscall per id
os.register_at_fork(after_in_child=_random.seed)  # forked workers must not repeat the parent's ids


class ServerMiddleware:
    """The one middleware of the server (see the module docstring). ``app`` is what serves a
    request that ``lean`` (a ``LeanRoutes``) does not."""

    def __init__(self, app, *, api_keys: Iterable[str] = (), max_body: int = 16 << 20, lean: LeanRoutes | None = None) -> None:
        self.app = app
        self.api_keys = tuple(k.encode() for k in api_keys if k)
        self.max_body = max_body
        self.lean = lean

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        headers = dict(scope["headers"])
        root = start_request(scope, headers)
        if path.startswith(TELEMETRY_PREFIX) and scope.get("query_string"):
            rewritten = rewrite_query(scope["query_string"].decode("latin-1"))
            if rewritten is not None:
                scope = {**scope, "query_string": rewritten.encode("latin-1")}
        rid = headers.get(REQUEST_ID_HEADER, b"").decode("latin-1")[:128] or f"{_random.getrandbits(128):032x}"
        added = [(REQUEST_ID_HEADER, rid.encode("latin-1"))]
        if root is not None and root[0] is not None:  # a sampled request's span: its X-Trace-Id
            added.append(root[2])
        method = scope["method"]
        watch = method not in _UNWATCHED
        state = _Exchange(send, added, root)

        if self.api_keys and not _open(path) and not self._authorized(headers):
            await _reply(state.send, 401, "missing or invalid API key", "AuthenticationError",
                         extra=[(b"www-authenticate", b"Bearer")])
            state.done(None, scope)
            return
        raw = headers.get(PROVIDER_DATA_HEADER)
        provider_data = None
        if raw:
            try:
                provider_data = json.loads(raw)
            except (ValueError, RecursionError):
                provider_data = None
            if not isinstance(provider_data, dict):
                await _reply(state.send, 400, "X-LlamaStack-Provider-Data: must be a JSON object", "BadRequestError")
                state.done(None, scope)
                return
        declared = headers.get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_body):
            # answered before a byte of the body is read; the connection closes
            # so the unread body is not taken for the next request
            await _reply(state.send, 413, _too_large(self.max_body), http_error_type(413),
                         extra=[(b"connection", b"close")])
            state.done(None, scope)
            return
        limit = self.max_body if declared is None and method not in _BODILESS else None  # chunked: count it
        if watch or limit is not None:
            receive = state.receiver(receive, limit, watch)
        token = set_request(rid, provider_data, root[0] if root is not None else None)
        error = None
        try:
            target = self.lean.find(scope) if self.lean is not None else None
            if target is not None:
                await self.lean.serve(target, scope, receive, state)
            else:
                await self.app(scope, receive, state.send)
        except asyncio.CancelledError as exc:
            if not state.gone:
                error = exc
                raise
            asyncio.current_task().uncancel()  # our own cancellation: the client left, nothing to answer
            log.info("client disconnected; request %s %s cancelled", method, path)
        except Exception as exc:
            log.exception("unhandled error in request %s", rid)
            if state.started:  # nothing more can be said on this response
                error = exc
                raise
            await _send_json(state.send, 500, internal_error_body(rid))
        except BaseException as exc:
            error = exc
            raise
        finally:
            reset_request(token)
            state.done(error, scope)

    def _authorized(self, headers: dict[bytes, bytes]) -> bool:
        offered = headers.get(b"x-api-key")
        if offered is None:
            auth = headers.get(b"authorization", b"")
            scheme, _, token = auth.partition(b" ")
            offered = token.strip() if scheme.lower() == b"bearer" else None
        if not offered:
            return False
        # compare against every key so timing says nothing about which matched
        return any([hmac.compare_digest(offered, key) for key in self.api_keys])


class _Exchange:
    """One request's state: its ``send`` (adding this server's headers, noting the status
    and whether the response is complete), and the disconnect watcher."""

    __slots__ = ("_send", "added", "root", "started", "finished", "gone", "watcher", "task", "status")

    def __init__(self, send, added: list, root: RootSpan | None) -> None:
        self._send, self.added, self.root = send, added, root
        self.started = self.finished = self.gone = False
        self.watcher: asyncio.Task | None = None
        self.task: asyncio.Task | None = None
        self.status: int | None = None

    async def send(self, message) -> None:
        kind = message["type"]
        if kind == "http.response.start":
            self.started = True
            self.status = message["status"]
            message["headers"] = [*message.get("headers", ()), *self.added]
        elif kind == "http.response.body" and not message.get("more_body", False):
            self.finished = True
        await self._send(message)

    def receiver(self, receive, limit: int | None, watch: bool):
        """``receive`` that stops a chunked body at ``limit`` bytes with a 413 (an
        HTTPException, so the body's reader passes it on as it is) and, with ``watch``,
        starts watching for the client leaving once the whole body has arrived."""
        seen = 0

        async def counted():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                if limit is not None:
                    seen += len(message.get("body", b""))
                    if seen > limit:
                        raise HTTPException(413, _too_large(limit))
                if watch and self.watcher is None and not message.get("more_body", False):
                    self.task = asyncio.current_task()
                    self.watcher = asyncio.create_task(self._watch(receive))
            return message

        return counted

    async def _watch(self, receive) -> None:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                if not self.finished:
                    self.gone = True
                    self.task.cancel()
                return

    def done(self, error: BaseException | None, scope) -> None:
        watcher = self.watcher
        if watcher is not None:
            # dropped as well as cancelled: its CancelledError's traceback holds the watch
            # frame, which holds this exchange; keeping the task here would make that a cycle
            # for the garbage collector (~29 objects a request, GC time grew with concurrency)
            self.watcher = None
            watcher.cancel()
        if self.root is not None:
            finish_root(self.root, self.status, error, scope)


class LeanRoutes:
    """The lean routes (``routes._OperationRoute`` with a lean handler) whose path has no
    parameters, served without the router's scan and the exception middlewares' layers:
    the same route (the one the router would pick first), the same exception handlers."""

    def __init__(self, app) -> None:
        self.app = app
        self._table: dict[tuple[str, str], Any] | None = None

    def find(self, scope) -> Any:
        table = self._table
        if table is None:
            table = self._table = self._build()
        if scope.get("root_path"):
            return None  # mounted below a prefix: the router knows how to strip it
        return table.get((scope["method"], scope["path"]))

    def _build(self) -> dict[tuple[str, str], Any]:
        routes = self.app.router.routes
        table = {}
        for route in routes:
            if not getattr(route, "lean", False) or route.param_convertors:
                continue
            for method in route.methods or ():
                probe = {"type": "http", "path": route.path, "method": method, "root_path": ""}
                first = next((r for r in routes if r.matches(probe)[0] == Match.FULL), None)
                if first is route:  # the router would pick this route for this request too
                    table[method, route.path] = route
        return table

    async def serve(self, route, scope, receive, state: _Exchange) -> None:
        scope["app"] = self.app
        scope["route"] = route
        scope["endpoint"] = route.endpoint
        scope["path_params"] = {}
        send = state.send
        request = Request(scope, receive, send)
        try:
            response = await route.lean_endpoint(request)
            await response(scope, receive, send)
        except Exception as exc:
            handler = self._handler(exc)
            if handler is None:
                raise
            if state.started:  # as Starlette's own handling says
                raise RuntimeError("Caught handled exception, but response already started.") from exc
            response = handler(request, exc)
            if inspect.isawaitable(response):
                response = await response
            await response(scope, receive, send)

    def _handler(self, exc: Exception):
        handlers = self.app.exception_handlers
        if isinstance(exc, HTTPException) and exc.status_code in handlers:
            return handlers[exc.status_code]
        for cls in type(exc).__mro__:
            if cls in handlers:
                return handlers[cls]
        return None


def _too_large(limit: int) -> str:
    return f"request body is larger than {limit} bytes (server.max_request_bytes)"


async def _reply(send, status: int, message: str, error_type: str, extra=()) -> None:
    await _send_json(send, status, error_body(status, message, error_type), extra)


async def _send_json(send, status: int, payload: dict, extra=()) -> None:
    body = dumps(payload)
    await send({
        "type": "http.response.start",
        "status": status,
        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *extra],
    })
    await send({"type": "http.response.body", "body": body})
