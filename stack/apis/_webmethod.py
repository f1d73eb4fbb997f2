"""The one decorator that ties a Protocol method to its HTTP route."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable, Literal, TypeVar

HttpMethod = Literal["GET", "POST", "DELETE", "PUT", "PATCH"]
F = TypeVar("F", bound=Callable[..., Any])

_PATH_PARAM = re.compile(r"{([a-zA-Z_][a-zA-Z0-9_]*)(?::path)?}")


@dataclass(frozen=True)
class WebMethod:
    """Route metadata of one API operation.

    ``route`` is the full path (``/v1/models/{model_id}``). Path parameters are
    the method's parameters of the same name; for GET and DELETE the others are
    query parameters (a DELETE with ``delete_body`` takes a JSON body instead,
    as W&B Training's checkpoint delete does); for POST/PUT/PATCH the others form the JSON body, a model
    named ``request_name`` (default: the method name in CamelCase + "Request",
    matching the spec's schema names).
    """

    route: str
    method: HttpMethod = "POST"
    request_name: str | None = None
    summary: str | None = None
    #: name of the one parameter that takes the whole JSON body (OpenAI style)
    body: str | None = None
    #: end streams with ``data: [DONE]`` as OpenAI-compatible streams do
    sse_done: bool = False
    #: further paths serving the same operation
    aliases: tuple[str, ...] = ()
    #: "application/jsonl" answers a list as one JSON document per line
    media_type: str = "application/json"
    #: a DELETE whose parameters travel as a JSON body
    delete_body: bool = False

    @property
    def path_params(self) -> list[str]:
        return _PATH_PARAM.findall(self.route)

    @property
    def has_body(self) -> bool:
        return self.method in ("POST", "PUT", "PATCH") or (self.delete_body and self.method == "DELETE")


def webmethod(
    *,
    route: str,
    method: HttpMethod = "POST",
    request_name: str | None = None,
    summary: str | None = None,
    body: str | None = None,
    sse_done: bool = False,
    aliases: tuple[str, ...] = (),
    media_type: str = "application/json",
    delete_body: bool = False,
) -> Callable[[F], F]:
    """Mark a Protocol method as an API operation served at ``route``."""

    def wrap(fn: F) -> F:
        fn.__webmethod__ = WebMethod(route, method, request_name, summary, body, sse_done, aliases, media_type, delete_body)  # type: ignore[attr-defined]
        return fn

    return wrap


def get_webmethod(fn: Any) -> WebMethod | None:
    return getattr(fn, "__webmethod__", None)
