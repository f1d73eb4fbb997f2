"""The HTTP server: app factory, routes built from stack/apis, SSE, error mapping."""

from .app import create_app, openapi_document
from .sse import sse_response

__all__ = ["create_app", "openapi_document", "sse_response"]
