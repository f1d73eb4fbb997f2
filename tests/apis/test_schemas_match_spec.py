"""The pydantic models and Protocols of stack.apis against the Llama Stack v1 spec.

Every mismatch is collected and reported in one failure, so one run shows all
the work left. The spec lives in the shared folder next to the repository
(``<repo>/../shared``), or wherever ``POLYSTACK_SHARED_DIR`` points.
"""

from __future__ import annotations

import enum
import importlib
import inspect
import os
import pkgutil
import typing
from pathlib import Path

import pytest
import yaml
from pydantic import BaseModel

import stack.apis
from stack.apis import api_names, get_protocol, iter_webmethods

REPO = Path(__file__).resolve().parents[2]
HTTP_METHODS = ("get", "post", "put", "patch", "delete")
SPEC_OPERATIONS = 74


def _spec_path() -> Path:
    shared = Path(os.environ.get("POLYSTACK_SHARED_DIR") or REPO.parent / "shared")
    return shared / "spec" / "llama-stack-v1.yaml"


@pytest.fixture(scope="module")
def spec() -> dict:
    path = _spec_path()
    if not path.is_file():
        pytest.fail(
            f"Llama Stack spec not found at {path}; set POLYSTACK_SHARED_DIR to the "
            "folder that holds spec/llama-stack-v1.yaml"
        )
    return yaml.safe_load(path.read_text())


def _modules() -> list:
    # api_names() covers the families; the private modules hold shared models.
    names = [f"stack.apis.{n}" for n in api_names()]
    names += [
        f"stack.apis.{info.name}"
        for info in pkgutil.iter_modules(stack.apis.__path__)
        if info.name.startswith("_")
    ]
    return [importlib.import_module(n) for n in names]


def _python_names(spec_names: set[str]) -> tuple[dict[str, object], list[str]]:
    """Every public class or typing alias in stack.apis.*; spec names bound to two objects."""
    found: dict[str, object] = {}
    clashes: list[str] = []
    for module in _modules():
        for name, obj in vars(module).items():
            if name.startswith("_"):
                continue
            if isinstance(obj, type):
                if not getattr(obj, "__module__", "").startswith("stack.apis"):
                    continue
            elif typing.get_origin(obj) is None:
                continue  # only classes and typing aliases (unions) stand for schemas
            if name in spec_names and name in found and found[name] != obj:
                clashes.append(f"{name}: two different definitions, one in {module.__name__}")
            found.setdefault(name, obj)
    return found, clashes


def _union_members(alias: object) -> list[type]:
    args = typing.get_args(alias)
    if typing.get_origin(alias) is typing.Annotated:
        return _union_members(args[0])
    return [a for a in args if isinstance(a, type)]


def _literal_of(cls: type[BaseModel], field: str) -> object:
    ann = cls.model_fields[field].annotation
    if typing.get_origin(ann) is typing.Literal:
        values = typing.get_args(ann)
        return values[0] if len(values) == 1 else values
    return None


# llama-stack's spec generator marks fields whose default comes from a factory
# as required; servers fill them in, so a default here is what clients expect.
FACTORY_DEFAULTS = {
    "CompletionMessage.tool_calls",
    "SamplingParams.strategy",
    "SafetyViolation.metadata",
    "Turn.output_attachments",
    "AppEvalTaskConfig.scoring_params",
    "Model.metadata",
}


def _check_model(name: str, schema: dict, cls: type[BaseModel], problems: list[str]) -> None:
    props = schema.get("properties", {})
    required = set(schema.get("required", []))
    fields = {(f.alias or n): (n, f) for n, f in cls.model_fields.items()}
    if set(fields) != set(props):
        missing = sorted(set(props) - set(fields))
        extra = sorted(set(fields) - set(props))
        problems.append(f"{name}: fields missing {missing}, not in spec {extra}")
    for prop, pschema in props.items():
        if prop not in fields:
            continue
        attr, field = fields[prop]
        if (prop in required and "default" not in pschema and not field.is_required()
                and f"{name}.{prop}" not in FACTORY_DEFAULTS):
            problems.append(f"{name}.{prop}: required in the spec, has a default here")
        if prop not in required and field.is_required():
            problems.append(f"{name}.{prop}: optional in the spec, required here")
        if "const" in pschema and _literal_of(cls, attr) != pschema["const"]:
            problems.append(f"{name}.{prop}: spec const {pschema['const']!r}, here {_literal_of(cls, attr)!r}")
        if "default" in pschema and not field.is_required():
            default = field.get_default(call_default_factory=True)
            if default != pschema["default"]:
                problems.append(f"{name}.{prop}: spec default {pschema['default']!r}, here {default!r}")


def _check_enum(name: str, schema: dict, cls: type[enum.Enum], problems: list[str]) -> None:
    values = [m.value for m in cls]
    if set(values) != set(schema["enum"]):
        problems.append(f"{name}: enum values {sorted(values)}, spec {sorted(schema['enum'])}")


def _check_union(name: str, schema: dict, alias: object, problems: list[str]) -> None:
    key = schema["discriminator"]["propertyName"]
    mapping = {k: v.rsplit("/", 1)[-1] for k, v in schema["discriminator"]["mapping"].items()}
    here: dict[object, str] = {}
    for member in _union_members(alias):
        if not (issubclass(member, BaseModel) and key in member.model_fields):
            problems.append(f"{name}: member {member.__name__} has no {key!r} field")
            continue
        here[_literal_of(member, key)] = member.__name__
    if here != mapping:
        problems.append(f"{name}: discriminator mapping {here}, spec {mapping}")


def test_models_match_spec_schemas(spec: dict) -> None:
    schemas = spec["components"]["schemas"]
    found, problems = _python_names(set(schemas))
    for name, schema in schemas.items():
        obj = found.get(name)
        if obj is None:
            continue
        if isinstance(obj, type) and issubclass(obj, BaseModel) and "properties" in schema:
            _check_model(name, schema, obj, problems)
        elif isinstance(obj, type) and issubclass(obj, enum.Enum) and "enum" in schema:
            _check_enum(name, schema, obj, problems)
        elif "discriminator" in schema and not isinstance(obj, type):
            _check_union(name, schema, obj, problems)
    assert not problems, "models differ from the spec:\n  " + "\n  ".join(problems)


def _body_ref(op: dict) -> str | None:
    schema = op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema", {})
    ref = schema.get("$ref")
    return ref.rsplit("/", 1)[-1] if ref else None


def test_every_spec_schema_is_declared(spec: dict) -> None:
    # Request bodies are built from method signatures, so they need no class.
    schemas = spec["components"]["schemas"]
    bodies = {_body_ref(op) for ops in spec["paths"].values() for op in ops.values()}
    found, _ = _python_names(set(schemas))
    missing = sorted(set(schemas) - bodies - set(found))
    assert not missing, f"{len(missing)} spec schemas have no class or alias in stack.apis: {missing}"


def _declared_operations() -> tuple[dict[tuple[str, str], tuple[str, object, object]], list[str]]:
    declared: dict[tuple[str, str], tuple[str, object, object]] = {}
    problems: list[str] = []
    for api in api_names():
        for name, wm, fn in iter_webmethods(get_protocol(api)):
            key = (wm.method.upper(), wm.route)
            if key in declared:
                problems.append(f"{key[0]} {key[1]}: declared by {declared[key][0]} and {api}.{name}")
            declared[key] = (f"{api}.{name}", wm, fn)
    return declared, problems


def _camel(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_"))


def _params(fn: object) -> dict[str, inspect.Parameter]:
    params = dict(inspect.signature(fn).parameters)
    params.pop("self", None)
    return params


def _check_required(where: str, spec_required: dict[str, bool], params: dict, problems: list[str]) -> None:
    for pname, required in spec_required.items():
        param = params.get(pname)
        if param is None:
            continue
        has_default = param.default is not inspect.Parameter.empty
        if required and has_default:
            problems.append(f"{where}: {pname} is required in the spec, has a default here")
        if not required and not has_default:
            problems.append(f"{where}: {pname} is optional in the spec, required here")


def test_every_spec_operation_is_declared(spec: dict) -> None:
    declared, problems = _declared_operations()
    schemas = spec["components"]["schemas"]
    count = 0
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            if method not in HTTP_METHODS:
                continue
            count += 1
            key = (method.upper(), path)
            if key not in declared:
                problems.append(f"{key[0]} {path}: no Protocol declares it")
                continue
            where, wm, fn = declared[key]
            params = _params(fn)
            for pname in wm.path_params:
                if pname not in params:
                    problems.append(f"{where}: path parameter {pname} is not a method parameter")
            query = {p["name"]: p.get("required", False) for p in op.get("parameters", []) if p["in"] == "query"}
            for pname in query:
                if pname not in params:
                    problems.append(f"{where}: query parameter {pname} is not a method parameter")
            _check_required(where, query, params, problems)
            if method != "post":
                continue
            ref = _body_ref(op)
            body = {n for n in params if n not in wm.path_params}
            if ref is None:
                if body:
                    problems.append(f"{where}: the spec has no body, the method has {sorted(body)}")
                continue
            request_name = wm.request_name or _camel(fn.__name__) + "Request"
            if request_name != ref:
                problems.append(f"{where}: request model {request_name}, spec {ref}")
            props = schemas[ref].get("properties", {})
            if body != set(props):
                problems.append(
                    f"{where}: body missing {sorted(set(props) - body)}, not in spec {sorted(body - set(props))}"
                )
            required = set(schemas[ref].get("required", []))
            spec_required = {n: n in required and "default" not in s for n, s in props.items()}
            _check_required(f"{where} body", spec_required, params, problems)
    if count != SPEC_OPERATIONS:
        problems.append(f"the spec should have {SPEC_OPERATIONS} operations, found {count}")
    assert not problems, "Protocols differ from the spec:\n  " + "\n  ".join(problems)
