"""Exceptions raised by the stack and its providers.

Providers raise these; only ``stack/server`` turns them into HTTP responses,
through ``STATUS_CODES``. Anything else that escapes is a bug and a 500.

    StackError
    ├── ClientError ..................... 400  the request is wrong
    │   ├── BadRequestError ............. 400  a field has a bad value
    │   ├── AuthenticationError ......... 401  missing or wrong API key
    │   ├── NotFoundError ............... 404  no such resource
    │   ├── ConflictError ............... 409  resource exists with other settings
    │   └── UnprocessableError .......... 422  well-formed but cannot be processed
    ├── NotSupportedError ............... 501  the provider lacks this operation
    ├── ServiceUnavailableError ......... 503  try again later (Retry-After says when)
    ├── StorageError .................... 500  a store failed (stack.storage; details logged only)
    │   ├── StorageUnavailableError ..... 503  database unreachable or locked; also a
    │   │                                      ServiceUnavailableError, so it carries Retry-After
    │   └── DuplicateKeyError ........... 500  an insert hit an existing primary key
    ├── UpstreamError ................... 502  a remote service failed
    │   └── UpstreamTimeoutError ........ 504  a remote service did not answer in time
    └── ConfigError ..................... (start-up) the run config is wrong
        └── UnknownProviderError ........ (start-up) provider_type not installed
"""

from __future__ import annotations

from typing import Any, Iterable


class StackError(Exception):
    """Base of every error the stack raises on purpose."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ClientError(StackError):
    """The request cannot be served as sent."""


class BadRequestError(ClientError):
    """A field of the request has a value the stack cannot use."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field
        self.reason = message


def invalid_field(exc, prefix: str) -> BadRequestError:
    """The first error of a pydantic ``ValidationError`` as a 400 naming ``prefix.<its path>``."""
    err = exc.errors()[0]
    path = ".".join(str(p) for p in err["loc"])
    return BadRequestError(err["msg"], field=f"{prefix}.{path}" if path else prefix)


class AuthenticationError(ClientError):
    """The request lacks a valid API key."""


class NotFoundError(ClientError):
    """A resource named by the request does not exist.

    ``NotFoundError("Model", "m1", known)`` reads "Model 'm1' not found;
    registered: ...". Where that form does not fit, pass the whole sentence as
    ``message`` (``known`` is then listed as "known: ..."), e.g.
    ``NotFoundError("step", "s9", ids, message="turn 't1' has no step 's9'")``.
    """

    def __init__(
        self, kind: str, identifier: str, known: Iterable[str] = (), *, message: str | None = None
    ) -> None:
        known = sorted(known)
        listing = ", ".join(repr(k) for k in known[:20]) if known else "none"
        if len(known) > 20:
            listing += f", ... ({len(known)} in all)"
        if message is None:
            text = f"{kind} {identifier!r} not found; registered: {listing}"
        else:
            text = f"{message}; known: {listing}" if known else message
        super().__init__(text)
        self.kind = kind
        self.identifier = identifier


class ConflictError(ClientError):
    """A resource with this id exists and differs from what was asked."""


class UnprocessableError(ClientError):
    """The request is well-formed but cannot be processed."""


class NotSupportedError(StackError):
    """The provider serving this request does not offer the operation."""


class ServiceUnavailableError(StackError):
    """The stack cannot serve the request now; the same request may succeed
    after ``retry_after`` seconds (sent as the ``Retry-After`` header)."""

    def __init__(self, message: str, *, retry_after: int = 5) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class UpstreamError(StackError):
    """A remote service the provider depends on failed."""


class UpstreamTimeoutError(UpstreamError):
    """A remote service did not answer in time."""


class ConfigError(StackError):
    """The run config cannot be used; the message names file, path and field."""


class UnknownProviderError(ConfigError):
    """A run config names provider types that no installed plugin registers."""


STATUS_CODES: dict[type[StackError], int] = {
    ClientError: 400,
    BadRequestError: 400,
    AuthenticationError: 401,
    NotFoundError: 404,
    ConflictError: 409,
    UnprocessableError: 422,
    NotSupportedError: 501,
    ServiceUnavailableError: 503,
    UpstreamError: 502,
    UpstreamTimeoutError: 504,
    StackError: 500,
}


def bad_request_from(exc: Any) -> BadRequestError:
    """A pydantic ``ValidationError`` raised after the request was parsed (a
    conversion, a provider's own request model) as a 400 naming the field."""
    errors = exc.errors(include_url=False)
    first = errors[0] if errors else {"loc": (), "msg": str(exc)}
    field = ".".join(str(part) for part in first["loc"]) or None
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return BadRequestError(first["msg"] + more, field=field)


def status_code_for(exc: StackError) -> int:
    """HTTP status of ``exc``: the entry of its nearest class in ``STATUS_CODES``."""
    for cls in type(exc).__mro__:
        if cls in STATUS_CODES:
            return STATUS_CODES[cls]
    return 500
