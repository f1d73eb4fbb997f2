"""Per-request plumbing as plain ASGI middleware: request id, API keys, provider data, body size."""

from __future__ import annotations

import hmac
import json
import logging
import uuid
from typing import Iterable

from starlette.exceptions import HTTPException

from ..console import is_console_path
from ..request_context import reset_request, set_request
from ._json import dumps
from .errors import error_body, http_error_type, internal_error_body

log = logging.getLogger(__name__)

PROVIDER_DATA_HEADER = b"x-llamastack-provider-data"
REQUEST_ID_HEADER = b"x-request-id"
OPEN_PATHS = frozenset({"/v1/health"})


def _open(path: str) -> bool:
    """Paths answered without an API key: health, and the console's page and static files
    (they hold no data; every call the console makes for data carries the key)."""
    return path in OPEN_PATHS or is_console_path(path)


class RequestContextMiddleware:
    """Gives every response an ``X-Request-ID``, checks API keys when configured,
    refuses bodies over ``max_body`` bytes (413) before reading them, and
    exposes ``X-LlamaStack-Provider-Data`` to providers for this request."""

    def __init__(self, app, api_keys: Iterable[str] = (), max_body: int = 16 << 20) -> None:
        self.app = app
        self.api_keys = tuple(k.encode() for k in api_keys if k)
        self.max_body = max_body

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        rid = headers.get(REQUEST_ID_HEADER, b"").decode("latin-1")[:128] or uuid.uuid4().hex
        rid_header = (REQUEST_ID_HEADER, rid.encode("latin-1"))

        started = False

        async def send_with_id(message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message["headers"] = [*message.get("headers", []), rid_header]
            await send(message)

        if self.api_keys and not _open(scope["path"]) and not self._authorized(headers):
            await _reply(send_with_id, 401, "missing or invalid API key", "AuthenticationError",
                         extra=[(b"www-authenticate", b"Bearer")])
            return
        raw = headers.get(PROVIDER_DATA_HEADER)
        provider_data = None
        if raw:
            try:
                provider_data = json.loads(raw)
            except (ValueError, RecursionError):
                provider_data = None
            if not isinstance(provider_data, dict):
                await _reply(send_with_id, 400, "X-LlamaStack-Provider-Data: must be a JSON object", "BadRequestError")
                return
        declared = headers.get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_body):
            # answered before a byte of the body is read; the connection closes
            # so the unread body is not taken for the next request
            await _reply(send_with_id, 413, _too_large(self.max_body), http_error_type(413),
                         extra=[(b"connection", b"close")])
            return
        if declared is None and scope["method"] not in ("GET", "HEAD", "DELETE", "OPTIONS"):
            receive = _counting(receive, self.max_body)  # chunked: count as it arrives
        tokens = set_request(rid, provider_data)
        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            log.exception("unhandled error in request %s", rid)
            if started:  # nothing more can be said on this response
                raise
            await _send_json(send_with_id, 500, internal_error_body(rid))
        finally:
            reset_request(tokens)

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


def _too_large(limit: int) -> str:
    return f"request body is larger than {limit} bytes (server.max_request_bytes)"


def _counting(receive, limit: int):
    """``receive`` that stops a chunked body at ``limit`` bytes with a 413
    (an HTTPException, so FastAPI's body reading passes it on as it is)."""
    seen = 0

    async def counted():
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                raise HTTPException(413, _too_large(limit))
        return message

    return counted


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
