"""The run config: llama-stack 0.1.x ``run.yaml`` (version 2), plus ``server:``."""

from __future__ import annotations

import importlib.resources
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ._yaml_env import YamlPath, format_path, load_yaml_with_lines, substitute_env
from .apis.datasets import DatasetInput
from .apis.eval_tasks import EvalTaskInput
from .apis.models import ModelInput
from .apis.scoring_functions import ScoringFnInput
from .apis.shields import ShieldInput
from .apis.tool_groups import ToolGroupInput
from .apis.vector_dbs import VectorDBInput
from .errors import ConfigError
from .fetcher import FetchConfig
from .routing.limits import GenerationLimits
from .storage import StoreConfig

DEFAULT_PORT = 8321
DEFAULT_HOST = "127.0.0.1"
DEFAULT_MAX_REQUEST_BYTES = 16 << 20


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())


class ProviderEntry(_Strict):
    """One entry under ``providers.<api>``."""

    provider_id: str = Field(description="Name of this provider instance, unique per API")
    provider_type: str = Field(description="'inline::name' or 'remote::name' of a registered provider")
    config: dict[str, Any] = Field(default_factory=dict, description="Validated by the provider's config class")

    @field_validator("config", mode="before")
    @classmethod
    def _none_is_empty(cls, value: Any) -> Any:
        return {} if value is None else value


class AuthConfig(_Strict):
    api_keys: list[str] = Field(
        default_factory=list,
        description="Accepted keys; sent as 'Authorization: Bearer <key>' or 'X-API-KEY: <key>'",
    )


class ServerConfig(_Strict):
    host: str | None = Field(
        None, description=f"Interface to bind; default {DEFAULT_HOST} (this machine only); '0.0.0.0' opens it to the network"
    )
    port: int = Field(DEFAULT_PORT, ge=1, le=65535, description="TCP port")
    auth: AuthConfig | None = Field(None, description="Require API keys on every route but /v1/health")
    max_request_bytes: int = Field(
        DEFAULT_MAX_REQUEST_BYTES, ge=1024, description="Largest request body accepted; larger ones get a 413 unread"
    )
    fetch: FetchConfig = Field(default_factory=FetchConfig, description="What URLs named in requests may reach")
    limits: GenerationLimits = Field(default_factory=GenerationLimits, description="Bounds on one generation request")


class RunConfig(_Strict):
    """A whole run config. Resource lists are registered at start-up."""

    version: Literal["2", 2] = Field("2", description="Run-config format version (llama-stack's v2)")
    image_name: str = Field(description="Name of this stack; also its state directory")
    conda_env: str | None = Field(None, description="Accepted for llama-stack compatibility; unused")
    container_image: str | None = Field(None, description="Accepted for llama-stack compatibility; unused")
    docker_image: str | None = Field(None, description="Accepted for llama-stack compatibility; unused")
    apis: list[str] = Field(default_factory=list, description="API families to serve")
    providers: dict[str, list[ProviderEntry]] = Field(default_factory=dict)
    metadata_store: StoreConfig | None = Field(None, description="Where the resource registry lives")
    models: list[ModelInput] = Field(default_factory=list)
    shields: list[ShieldInput] = Field(default_factory=list)
    vector_dbs: list[VectorDBInput] = Field(default_factory=list)
    datasets: list[DatasetInput] = Field(default_factory=list)
    scoring_fns: list[ScoringFnInput] = Field(default_factory=list)
    eval_tasks: list[EvalTaskInput] = Field(default_factory=list)
    tool_groups: list[ToolGroupInput] = Field(default_factory=list)
    server: ServerConfig = Field(default_factory=ServerConfig)

    @field_validator("providers", mode="before")
    @classmethod
    def _drop_disabled(cls, value: Any) -> Any:
        # `provider_id: ${env.X:+name}` that resolved to "" switches a provider off
        if isinstance(value, dict):
            return {
                api: [p for p in (entries or []) if not (isinstance(p, dict) and p.get("provider_id") in ("", None))]
                for api, entries in value.items()
            }
        return value


@dataclass(frozen=True)
class LoadedConfig:
    """A validated run config and where it came from (for error messages)."""

    config: RunConfig
    source: str
    lines: dict[YamlPath, int]
    #: environment variables the file needs that are unset; reported by the
    #: resolver's plan() together with every other problem of the file
    env_problems: tuple[str, ...] = ()

    def where(self, path: YamlPath) -> str:
        """``file:line at yaml.path`` for messages; the line of the nearest known parent."""
        for i in range(len(path), -1, -1):
            line = self.lines.get(tuple(path[:i]))
            if line is not None:
                return f"{self.source}:{line} at {format_path(path)}"
        return f"{self.source} at {format_path(path)}"


def distribution_path(name: str) -> Path | None:
    """The run.yaml of the embedded distribution ``name``, if there is one."""
    candidate = importlib.resources.files("distributions") / name / "run.yaml"
    return Path(str(candidate)) if candidate.is_file() else None


def list_distributions() -> list[str]:
    root = importlib.resources.files("distributions")
    return sorted(p.name for p in root.iterdir() if (p / "run.yaml").is_file())


def resolve_config_path(target: str | None) -> Path:
    """A distribution name or a file path -> the run.yaml to load."""
    target = target or "starter"
    path = Path(target).expanduser()
    if path.is_file():
        return path
    dist = distribution_path(target)
    if dist is not None:
        return dist
    raise ConfigError(
        f"{target!r} is neither a run-config file nor a distribution; "
        f"distributions: {', '.join(list_distributions())}"
    )


def _validation_messages(exc: ValidationError, loaded_where, prefix: YamlPath = ()) -> list[str]:
    out = []
    for err in exc.errors():
        path = prefix + tuple(err["loc"])
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown field"
        out.append(f"{loaded_where(path)}: {msg}")
    return out


def load_run_config(path: Path | str) -> LoadedConfig:
    """Read, substitute ${env...} and validate a run config; ConfigError lists every problem."""
    path = Path(path)
    source = str(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"{source}: cannot read: {exc.strerror}") from None
    raw, lines = load_yaml_with_lines(text, source)
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: a run config is a YAML mapping")
    data, missing = substitute_env(raw)
    partial = LoadedConfig(RunConfig.model_construct(), source, lines)
    env_problems = tuple(
        f"{partial.where(p)}: environment variable {name} is not set and has no default"
        for p, name in missing
    )
    try:
        config = RunConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError("\n".join([*env_problems, *_validation_messages(exc, partial.where)])) from None
    return LoadedConfig(config, source, lines, env_problems)


def validation_messages(exc: ValidationError, loaded: LoadedConfig, prefix: YamlPath) -> list[str]:
    """Messages for a provider-config ValidationError, located at ``prefix`` in the file."""
    return _validation_messages(exc, loaded.where, prefix)
