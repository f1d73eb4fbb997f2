"""The one mapping from exceptions to HTTP responses, and the one error body."""

from __future__ import annotations

import http
import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from ..errors import ServiceUnavailableError, StackError, status_code_for
from ..request_context import request_id
from ..storage import StorageError

log = logging.getLogger(__name__)


def error_body(status: int, message: str, error_type: str, detail: Any = None) -> dict:
    """The body of every error the server sends: JSON responses and the event
    that ends a failed stream. ``detail`` defaults to ``message`` (a 422 lists
    its field errors there, as FastAPI does)."""
    return {"detail": message if detail is None else detail,
            "error": {"message": message, "type": error_type, "status": status}}


def internal_error_body(rid: str) -> dict:
    """What a client sees of a bug: no internals, the id to find it in the log."""
    return error_body(500, f"internal error; request id {rid}", "InternalError")


def stack_error_body(exc: BaseException) -> tuple[int, dict]:
    """(status, body) for ``exc``: a StackError as its class says, anything
    else (and a failed storage statement, whose text stays in the log) as a hidden 500."""
    if isinstance(exc, StackError):
        status = status_code_for(exc)
        if not (status == 500 and isinstance(exc, StorageError)):
            return status, error_body(status, exc.message, type(exc).__name__)
    return 500, internal_error_body(request_id() or "-")


def validation_errors(exc: RequestValidationError) -> list[dict]:
    """Field errors as ``{loc, msg, type}``: never the input, which may be
    bytes that are not UTF-8 or a large echo of what the client sent."""
    return [{"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")), "type": str(e.get("type", ""))}
            for e in exc.errors()]


async def _stack_error(_request: Request, exc: StackError) -> JSONResponse:
    status, body = stack_error_body(exc)
    headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, ServiceUnavailableError) else {}
    if status == 500 and isinstance(exc, StorageError):
        log.error("storage error in request %s", request_id() or "-", exc_info=exc)
    elif status >= 500:
        log.warning("%s: %s", type(exc).__name__, exc.message)
    return JSONResponse(body, status_code=status, headers=headers)


async def _validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
    errors = validation_errors(exc)
    message = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in errors[:3]) or "invalid request"
    return JSONResponse(error_body(422, message, "ValidationError", errors), status_code=422)


def http_error_type(status: int) -> str:
    """The error type of an HTTP-level error: ``NotFoundError``, ``MethodNotAllowedError``, ..."""
    if status == 413:  # one name whether the Content-Length or the counted body was too large
        return "PayloadTooLargeError"
    return http.HTTPStatus(status).phrase.title().replace(" ", "").replace("-", "") + "Error"


async def _http_error(request: Request, exc: HTTPException) -> JSONResponse:
    name = http_error_type(exc.status_code)
    message = str(exc.detail)
    if exc.status_code in (404, 405) and message == http.HTTPStatus(exc.status_code).phrase:
        # the router's bare "Not Found" / "Method Not Allowed": say which request had no route
        # (the scope's path: Request.url drops tabs and newlines, as urllib does)
        path = request.scope.get("path", "")
        message = f"{message}: no route serves {request.method} {path!r}; GET /v1/inspect/routes lists them"
    return JSONResponse(error_body(exc.status_code, message, name), status_code=exc.status_code,
                        headers=exc.headers)


def install_error_handlers(app: FastAPI) -> None:
    """StackError -> its status (503s with Retry-After); validation -> 422 listing the fields; HTTP
    errors (404, 405, 413) keep their status. Anything else becomes a logged 500
    in RequestContextMiddleware, which knows the request id. Every body is ``error_body``'s."""
    app.add_exception_handler(StackError, _stack_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
