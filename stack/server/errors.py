"""The one mapping from exceptions to HTTP responses."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from ..errors import StackError, status_code_for

log = logging.getLogger(__name__)


def error_body(status: int, message: str, error_type: str) -> dict:
    return {"detail": message, "error": {"type": error_type, "status": status}}


async def _stack_error(_request: Request, exc: StackError) -> JSONResponse:
    status = status_code_for(exc)
    if status >= 500:
        log.warning("%s: %s", type(exc).__name__, exc.message)
    return JSONResponse(error_body(status, exc.message, type(exc).__name__), status_code=status)


def internal_error_body(rid: str) -> dict:
    """What a client sees of a bug: no internals, the id to find it in the log."""
    return error_body(500, f"internal error; request id {rid}", "InternalError")


def install_error_handlers(app: FastAPI) -> None:
    """StackError -> its status; FastAPI's own 422 stays as it is. Anything
    else becomes a logged 500 in RequestContextMiddleware, which knows the request id."""
    app.add_exception_handler(StackError, _stack_error)
