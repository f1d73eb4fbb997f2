"""create_app(plan): the FastAPI application serving a run config."""

from __future__ import annotations

import os
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.middleware.asyncexitstack import AsyncExitStackMiddleware
from starlette.middleware.exceptions import ExceptionMiddleware

from .. import __version__
from ..apis import api_names
from ..console import install_console
from ..errors import NotSupportedError
from ..resolver import Plan
from ..runtime import Stack, served_apis
from ._openapi import install_openapi
from .errors import install_error_handlers
from .middleware import LeanRoutes, ServerMiddleware
from .routes import add_api_routes

API_KEYS_ENV = "POLYSTACK_API_KEYS"


def api_keys_for(plan: Plan) -> list[str]:
    """Keys from ``server.auth.api_keys`` plus ``POLYSTACK_API_KEYS`` (comma-separated)."""
    auth = plan.loaded.config.server.auth
    keys = list(auth.api_keys) if auth else []
    keys += [k.strip() for k in os.environ.get(API_KEYS_ENV, "").split(",") if k.strip()]
    return keys


class _App(FastAPI):
    """FastAPI with one middleware of ours (``ServerMiddleware``) in front of its exception
    handlers and router, instead of FastAPI's outer layers: its native OpenTelemetry
    instrumentation (off: the telemetry API traces requests), its body limit (ours answers
    the 413) and Starlette's server-error layer (ours answers the 500). Each layer cost a
    call and a wrapped ``send`` on every request."""

    server_options: dict[str, Any] = {}

    def build_middleware_stack(self):
        exception_handlers = {k: v for k, v in self.exception_handlers.items() if k not in (500, Exception)}
        app = ExceptionMiddleware(AsyncExitStackMiddleware(self.router), handlers=exception_handlers, debug=self.debug)
        # added with add_middleware: kept, inside ours (the lean routes, served by ours, skip them)
        for cls, args, kwargs in reversed(self.user_middleware):
            app = cls(app, *args, **kwargs)
        return ServerMiddleware(app, lean=LeanRoutes(self), **self.server_options)


def _new_app(**kwargs: Any) -> FastAPI:
    app = _App(
        telemetry={"tracing": False, "metrics": False, "logs": False},
        title="polystack",
        version=__version__,
        description="Llama Stack v1 API with pluggable providers",
        **kwargs,
    )
    install_openapi(app)
    return app


def create_app(plan: Plan) -> FastAPI:
    """The app for ``plan``; providers start in its lifespan and close on shutdown."""
    stack = Stack(plan)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        if not stack.started:  # `polystack run` starts it before opening the port
            await stack.start()
        try:
            yield
        finally:
            await stack.shutdown()

    app = _new_app(lifespan=lifespan)
    app.state.stack = stack
    add_api_routes(app, served_apis(plan), stack.impls.__getitem__)
    install_console(app)
    install_error_handlers(app)
    app.server_options = {"api_keys": api_keys_for(plan), "max_body": plan.loaded.config.server.max_request_bytes}
    return app


def openapi_document() -> dict[str, Any]:
    """The OpenAPI document of every declared API (plugins' included), without starting anything."""
    from ..plugins import collect_apis, get_plugin_manager

    collect_apis(get_plugin_manager())

    def unavailable(api: str) -> Any:
        raise NotSupportedError(f"{api} is not served by this document-only app")

    app = _new_app()
    add_api_routes(app, list(api_names()), unavailable)
    return app.openapi()
