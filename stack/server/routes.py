"""HTTP routes built from the API declarations in ``stack/apis``.

For each ``@webmethod`` of a served API this adds one FastAPI route whose
endpoint has typed path, query and body parameters (so FastAPI validates,
answers 422 with field paths and documents the schema) and calls the method of
the same name on the object serving that API. That one route both documents
and serves the operation; when its input is a JSON body (and string path
parameters) a lean handler validating with the same request model serves it
instead of FastAPI's per-request dependency machinery, which costs more than
the rest of a fast request.
"""

from __future__ import annotations

import collections.abc
import enum
import functools
import inspect
import json
import types
import typing
from typing import Any, Callable

from fastapi import Body, FastAPI, Path, Query
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError, create_model
from pydantic.fields import FieldInfo
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import request_response

from ..apis import WebMethod, get_protocol, iter_webmethods
from ._json import dumps
from .sse import sse_response

ImplGetter = Callable[[str], Any]
_SCALARS = (str, int, float, bool)


def _camel(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_"))


def _is_scalar(tp: Any) -> bool:
    if tp in _SCALARS or (isinstance(tp, type) and issubclass(tp, enum.Enum)):
        return True
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return all(_is_scalar(a) or a is type(None) for a in typing.get_args(tp))
    if origin is typing.Literal:
        return True
    if origin is typing.Annotated:
        return _is_scalar(typing.get_args(tp)[0])
    return False


def _is_query_compatible(tp: Any) -> bool:
    """Scalars and lists of scalars travel as plain query parameters."""
    if _is_scalar(tp):
        return True
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    if typing.get_origin(tp) in (typing.Union, types.UnionType) and len(args) == 1:
        return _is_query_compatible(args[0])
    return typing.get_origin(tp) in (list, collections.abc.Sequence) and all(_is_scalar(a) for a in args)


_BOUNDS = ("ge", "gt", "le", "lt", "min_length", "max_length", "pattern")


def _query(ann: Any, default: Any) -> tuple[Any, Any]:
    """(type, FastAPI Query) of a query parameter; the bounds of an ``Annotated[int, Field(ge=1)]``
    become the Query's, so FastAPI checks them (422) and documents them."""
    if typing.get_origin(ann) is not typing.Annotated:
        return ann, Query(default)
    base, *metadata = typing.get_args(ann)
    bounds: dict[str, Any] = {}
    for info in metadata:
        if isinstance(info, FieldInfo):
            if info.description:
                bounds["description"] = info.description
            for constraint in info.metadata:
                bounds.update({k: getattr(constraint, k) for k in _BOUNDS if hasattr(constraint, k)})
    return base, Query(default, **bounds)


def _split_return(annotation: Any) -> tuple[Any, bool]:
    """(the JSON response type, whether the operation can stream)."""
    if annotation is None or annotation is type(None):
        return None, False
    args = typing.get_args(annotation) if typing.get_origin(annotation) in (typing.Union, types.UnionType) else (annotation,)
    plain = [a for a in args if typing.get_origin(a) is not collections.abc.AsyncIterator]
    streams = len(plain) != len(args)
    if not plain:
        return None, streams
    return (plain[0] if len(plain) == 1 else typing.Union[tuple(plain)]), streams


def _located(exc: ValidationError, *prefix: str) -> RequestValidationError:
    """The 422 for ``exc``, its field paths under ``prefix`` ("body", or "query" and the name)."""
    return RequestValidationError([{**e, "loc": (*prefix, *e["loc"])} for e in exc.errors(include_url=False)])


def _parse_body(model: type[BaseModel] | TypeAdapter, raw: bytes) -> Any:
    """``raw`` validated as ``model``; a 422 located under "body" when it is not."""
    try:
        return model.validate_json(raw) if isinstance(model, TypeAdapter) else model.model_validate_json(raw)
    except ValidationError as exc:
        raise _located(exc, "body") from None


def _render(result: Any, media_type: str = "application/json") -> Response:
    if media_type == "application/jsonl" and isinstance(result, list):
        lines = [item.model_dump_json() if isinstance(item, BaseModel) else dumps(item).decode() for item in result]
        return Response("".join(line + "\n" for line in lines), media_type=media_type)
    if isinstance(result, BaseModel):
        return Response(result.model_dump_json(), media_type="application/json")
    return Response(dumps(result), media_type="application/json")


def _path_routes(declared: list[str]) -> dict[str, str]:
    """Let a trailing path parameter hold slashes (model ids like 'org/name')
    unless another route continues below it."""
    out = {}
    for route in declared:
        prefix, _, last = route.rpartition("/")
        greedy = last.startswith("{") and not any(r != route and r.startswith(prefix + "/") and r.count("/") > route.count("/") for r in declared)
        out[route] = f"{prefix}/{last[:-1]}:path}}" if greedy else route
    return out


class _Operation:
    """One declared operation turned into a FastAPI endpoint."""

    def __init__(self, api: str, name: str, wm: WebMethod, fn: Any, get_impl: ImplGetter) -> None:
        self.api, self.name, self.wm, self.get_impl = api, name, wm, get_impl
        hints = typing.get_type_hints(fn, include_extras=True)
        self.response_type, self.streams = _split_return(hints.get("return"))
        self.json_params: dict[str, TypeAdapter] = {}
        self.query_params: list[str] = []
        self.path_types_are_str = all(hints.get(p) is str for p in wm.path_params)
        params, body_fields = [], {}
        for p in list(inspect.signature(fn).parameters.values())[1:]:
            ann = hints.get(p.name, Any)
            default = ... if p.default is inspect.Parameter.empty else p.default
            if p.name in wm.path_params:
                params.append(inspect.Parameter(p.name, inspect.Parameter.KEYWORD_ONLY, annotation=ann, default=Path(...)))
            elif p.name == wm.body:  # the whole body is this one model
                self.body_type = ann
                params.append(inspect.Parameter(p.name, inspect.Parameter.KEYWORD_ONLY, annotation=ann, default=Body(...)))
            elif wm.has_body and p.name not in wm.query:
                body_fields[p.name] = (ann, default)
            elif _is_query_compatible(ann):
                self.query_params.append(p.name)
                base, query = _query(ann, default)
                params.append(inspect.Parameter(p.name, inspect.Parameter.KEYWORD_ONLY, annotation=base, default=query))
            else:  # structured query value: JSON in the query string
                self.json_params[p.name] = TypeAdapter(ann)
                q = Query(None if default is ... or default is None else json.dumps(default), description=f"JSON: {ann}")
                params.append(inspect.Parameter(p.name, inspect.Parameter.KEYWORD_ONLY, annotation=str | None, default=q))
        self.body_model = None
        self.body_required = False
        if wm.has_body and body_fields:
            self.body_model = create_model(
                wm.request_name or f"{_camel(name)}Request",
                __config__=ConfigDict(protected_namespaces=()),
                **body_fields,
            )
            required = self.body_required = any(f.is_required() for f in self.body_model.model_fields.values())
            params.append(inspect.Parameter(
                "request_body", inspect.Parameter.KEYWORD_ONLY, annotation=self.body_model if required else self.body_model | None,
                default=Body(...) if required else Body(None),
            ))
        self.signature = inspect.Signature(params)

    def endpoint(self) -> Callable[..., Any]:
        async def endpoint(**kwargs: Any) -> Response:
            body = kwargs.pop("request_body", None)
            if body is not None:
                kwargs.update({k: getattr(body, k) for k in type(body).model_fields})
            for name, adapter in self.json_params.items():
                kwargs[name] = self._parse_json_query(name, kwargs.get(name), adapter)
            return await self._respond(await getattr(self.get_impl(self.api), self.name)(**kwargs))

        endpoint.__signature__ = self.signature  # type: ignore[attr-defined]
        endpoint.__name__ = self.name
        return endpoint

    def body_endpoint(self) -> Callable[..., Any]:
        """A plain Starlette endpoint for operations that take the whole body
        as one model (the OpenAI-compatible routes): the same validation and
        422 as FastAPI's, without its per-request dependency machinery, which
        costs more than the rest of a proxied request (docs/performance.md)."""
        body_type = self.body_type
        if not (isinstance(body_type, type) and issubclass(body_type, BaseModel)):  # one model or a list of them
            body_type = TypeAdapter(body_type)
        call_name, param = self.name, self.wm.body

        async def endpoint(request: Request) -> Response:
            body = _parse_body(body_type, await request.body())
            kwargs = {**request.path_params, param: body}
            return await self._respond(await getattr(self.get_impl(self.api), call_name)(**kwargs))

        return endpoint

    @property
    def lean(self) -> bool:
        """Whether ``fields_endpoint`` can serve this operation: a body of
        fields and string path parameters, nothing in the query string."""
        return (self.wm.has_body and not self.wm.body and not self.query_params and not self.json_params
                and self.path_types_are_str)

    def fields_endpoint(self) -> Callable[..., Any]:
        """A plain Starlette endpoint for operations whose input is a JSON body
        of fields (and path parameters): validated by the same request model,
        with FastAPI's 422 error shape, without its dependency machinery."""
        model, required, call_name = self.body_model, self.body_required, self.name

        async def endpoint(request: Request) -> Response:
            kwargs: dict[str, Any] = dict(request.path_params)
            raw = await request.body()
            if model is not None and raw.strip():
                body = _parse_body(model, raw)
                kwargs.update({k: getattr(body, k) for k in model.model_fields})
            elif required:
                raise RequestValidationError([{"type": "missing", "loc": ("body",), "msg": "Field required", "input": None}])
            return await self._respond(await getattr(self.get_impl(self.api), call_name)(**kwargs))

        return endpoint

    async def _respond(self, result: Any) -> Response:
        if isinstance(result, collections.abc.AsyncIterator):
            return await sse_response(result, done_marker=self.wm.sse_done)
        return _render(result, self.wm.media_type)

    @staticmethod
    def _parse_json_query(name: str, raw: str | None, adapter: TypeAdapter) -> Any:
        if raw is None:
            return None
        try:
            return adapter.validate_json(raw)
        except ValidationError as exc:
            raise _located(exc, "query", name) from None

    def openapi_responses(self) -> dict:
        ok: dict[str, Any] = {"description": "OK"}
        if self.response_type is not None:
            ok["model"] = self.response_type
        if self.wm.media_type != "application/json":
            ok["content"] = {self.wm.media_type: {}}
        if self.streams:
            ok["content"] = {"text/event-stream": {}}
        return {200: ok}


class _OperationRoute(APIRoute):
    """The one route of an operation: FastAPI documents it from the typed
    endpoint; the lean handler, when the operation has one, serves it."""

    def __init__(self, path: str, endpoint: Callable[..., Any], *, lean: Callable[..., Any] | None, **kwargs: Any) -> None:
        super().__init__(path, endpoint, **kwargs)
        self.lean = lean is not None
        self.lean_endpoint = lean  # ServerMiddleware calls it directly (middleware.LeanRoutes)
        if lean is not None:
            self.app = request_response(lean)


def add_api_routes(app: FastAPI, apis: list[str], get_impl: ImplGetter) -> None:
    """Add the route of every operation declared by ``apis`` (and of its aliases)."""
    declared = [(api, name, wm, fn) for api in apis for name, wm, fn in iter_webmethods(get_protocol(api))]
    paths = _path_routes([wm.route for *_, wm, _ in declared])
    for api, name, wm, fn in sorted(declared, key=lambda d: d[2].route, reverse=True):
        op = _Operation(api, name, wm, fn, get_impl)
        endpoint = op.endpoint()
        whole_body = wm.body and not op.query_params and op.path_types_are_str
        lean = op.body_endpoint() if whole_body else op.fields_endpoint() if op.lean else None
        for path in (paths[wm.route], *wm.aliases):
            app.router.add_api_route(
                path,
                endpoint,
                methods=[wm.method],
                name=f"{api}.{name}",
                tags=[api],
                summary=wm.summary,
                response_model=None,
                responses=op.openapi_responses(),
                include_in_schema=path == paths[wm.route],
                route_class_override=functools.partial(_OperationRoute, lean=lean),
            )
    # routes are tried in turn on every request: the lean ones (the hot OpenAI-compatible
    # routes among them) first, in path order ("{" sorts after letters: literal segments first)
    app.router.routes.sort(key=lambda route: (0, route.path) if getattr(route, "lean", False) else (1, ""))
