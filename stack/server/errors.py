"""The one mapping from exceptions to HTTP responses."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from ..errors import ServiceUnavailableError, StackError, status_code_for
from ..request_context import request_id
from ..storage import StorageError

log = logging.getLogger(__name__)


def error_body(status: int, message: str, error_type: str) -> dict:
    return {"detail": message, "error": {"type": error_type, "status": status}}


async def _stack_error(_request: Request, exc: StackError) -> JSONResponse:
    status = status_code_for(exc)
    headers = {}
    if isinstance(exc, ServiceUnavailableError):
        headers["Retry-After"] = str(exc.retry_after)
    if status == 500 and isinstance(exc, StorageError):  # a failed statement: its text stays in the log
        rid = request_id() or "-"
        log.error("storage error in request %s", rid, exc_info=exc)
        return JSONResponse(internal_error_body(rid), status_code=500)
    if status >= 500:
        log.warning("%s: %s", type(exc).__name__, exc.message)
    return JSONResponse(error_body(status, exc.message, type(exc).__name__), status_code=status, headers=headers)


def internal_error_body(rid: str) -> dict:
    """What a client sees of a bug: no internals, the id to find it in the log."""
    return error_body(500, f"internal error; request id {rid}", "InternalError")


def install_error_handlers(app: FastAPI) -> None:
    """StackError -> its status (503s with Retry-After); FastAPI's own 422 stays
    as it is. Anything else becomes a logged 500 in RequestContextMiddleware,
    which knows the request id."""
    app.add_exception_handler(StackError, _stack_error)
