"""create_app(plan): the FastAPI application serving a run config."""

from __future__ import annotations

import os
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from .. import __version__
from ..apis import api_names
from ..console import install_console
from ..errors import NotSupportedError
from ..resolver import Plan
from ..runtime import Stack, served_apis
from ._openapi import install_openapi
from .errors import install_error_handlers
from .client_compat import TelemetryQueryCompatMiddleware
from .disconnect import CancelOnDisconnectMiddleware
from .middleware import RequestContextMiddleware
from .routes import add_api_routes
from .tracing import TracingMiddleware

API_KEYS_ENV = "POLYSTACK_API_KEYS"


def api_keys_for(plan: Plan) -> list[str]:
    """Keys from ``server.auth.api_keys`` plus ``POLYSTACK_API_KEYS`` (comma-separated)."""
    auth = plan.loaded.config.server.auth
    keys = list(auth.api_keys) if auth else []
    keys += [k.strip() for k in os.environ.get(API_KEYS_ENV, "").split(",") if k.strip()]
    return keys


def _new_app(**kwargs: Any) -> FastAPI:
    app = FastAPI(
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
    app.add_middleware(CancelOnDisconnectMiddleware)
    app.add_middleware(RequestContextMiddleware, api_keys=api_keys_for(plan),
                       max_body=plan.loaded.config.server.max_request_bytes)
    app.add_middleware(TelemetryQueryCompatMiddleware)
    app.add_middleware(TracingMiddleware)  # outermost: refused requests are traced too
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
