"""The one mapping from exceptions to HTTP responses."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from ..errors import StackError, status_code_for
from ..request_context import request_id

log = logging.getLogger(__name__)


def error_body(status: int, message: str, error_type: str) -> dict:
    return {"detail": message, "error": {"type": error_type, "status": status}}


async def _stack_error(_request: Request, exc: StackError) -> JSONResponse:
    status = status_code_for(exc)
    if status >= 500:
        log.warning("%s: %s", type(exc).__name__, exc.message)
    return JSONResponse(error_body(status, exc.message, type(exc).__name__), status_code=status)


async def _unexpected(_request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error", exc_info=exc)
    message = f"internal error; request id {request_id()}"
    return JSONResponse(error_body(500, message, "InternalError"), status_code=500)


def install_error_handlers(app: FastAPI) -> None:
    """StackError -> its status; the rest is a logged 500. FastAPI's own 422 stays as it is."""
    app.add_exception_handler(StackError, _stack_error)
    app.add_exception_handler(Exception, _unexpected)
