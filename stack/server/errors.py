"""The one mapping from exceptions to HTTP responses."""

from __future__ import annotations

import logging
import math
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
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


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


async def _validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
    """FastAPI's own 422, but an echoed NaN or infinity (which JSON cannot hold) as a string, not a 500."""
    return JSONResponse({"detail": _finite(jsonable_encoder(exc.errors()))}, status_code=422)


def install_error_handlers(app: FastAPI) -> None:
    """StackError -> its status (503s with Retry-After); FastAPI's own 422 stays
    as it is (NaN made printable). Anything else becomes a logged 500 in
    RequestContextMiddleware, which knows the request id."""
    app.add_exception_handler(StackError, _stack_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
