"""What a provider is: the spec a plugin registers and the context it starts with."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Awaitable, Callable

from pydantic import BaseModel, ValidationError

from .errors import BadRequestError
from .fetcher import URLFetcher
from .request_context import raw_provider_data

if TYPE_CHECKING:
    from .jobs import JobRunner
    from .routing import Routing

PROVIDER_TYPE = re.compile(r"^(inline|remote)::[a-z0-9][a-z0-9_.\-]*(::[a-z0-9][a-z0-9_.\-]*)*$")  # hf::endpoint: llama-stack's nested names

ProviderFactory = Callable[[Any, "ProviderContext"], Awaitable[Any]]


@dataclass(frozen=True)
class ProviderSpec:
    """One provider type of one API, as a plugin registers it.

    ``config`` is the pydantic class of the provider's ``config:`` block;
    ``factory(config, context)`` is awaited at start-up and returns the object
    that implements the API's Protocol. ``api_dependencies`` are APIs whose
    routers the provider receives in ``context.deps``.
    """

    api: str
    provider_type: str
    config: type[BaseModel]
    factory: ProviderFactory
    api_dependencies: tuple[str, ...] = ()
    optional_api_dependencies: tuple[str, ...] = ()
    provider_data_validator: type[BaseModel] | None = None
    description: str = ""
    #: the part of the API's Protocol this provider serves (a Protocol whose
    #: operations are some of the API's); None: all of it. Operations outside
    #: it answer 501 and are not listed for this provider in /v1/inspect/routes.
    serves: type | None = None

    def operations(self) -> frozenset[str] | None:
        """Names of the operations this provider serves; None: every one of its API."""
        if self.serves is None:
            return None
        from .apis import iter_webmethods

        return frozenset(name for name, _wm, _fn in iter_webmethods(self.serves))

    def __post_init__(self) -> None:
        if not PROVIDER_TYPE.match(self.provider_type):
            raise ValueError(
                f"provider_type {self.provider_type!r} must look like 'inline::name' or 'remote::name'"
            )
        if not (isinstance(self.config, type) and issubclass(self.config, BaseModel)):
            raise TypeError(f"{self.provider_type}: config must be a pydantic model class")
        if not callable(self.factory):
            raise TypeError(f"{self.provider_type}: factory must be an async callable")


@dataclass(frozen=True)
class ApiSpec:
    """An API family a plugin adds with ``register_apis``.

    ``protocol`` declares its operations (methods with ``@webmethod``), as the
    modules of ``stack/apis`` do. A family whose operations name a registered
    resource (a routed family) also gives its ``routing``; its table API (the
    registry of those resources) is registered as a family of its own, whose
    Protocol the routing's table class implements.
    """

    name: str
    protocol: type
    routing: "Routing | None" = None

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[a-z][a-z0-9_]*", self.name):
            raise ValueError(f"API name {self.name!r} must be lower_snake_case")
        if not isinstance(self.protocol, type):
            raise TypeError(f"API {self.name!r}: protocol must be a class")
        if self.routing is not None and self.routing.routed_api != self.name:
            raise ValueError(f"API {self.name!r}: its routing is for {self.routing.routed_api!r}")


@dataclass(frozen=True)
class RegisteredProvider:
    """A ProviderSpec and the distribution (pip package) that registered it."""

    spec: ProviderSpec
    package: str


@dataclass
class ProviderContext:
    """What a provider's factory receives besides its config."""

    provider_id: str
    spec: ProviderSpec
    image_name: str
    data_dir: Path
    deps: dict[str, Any] = field(default_factory=dict)
    #: reads every URL a request names, under the run config's ``server.fetch``
    fetcher: URLFetcher = field(default_factory=URLFetcher)
    #: runs long work as jobs every replica sees (``stack/jobs.py``); None outside a running stack
    jobs: "JobRunner | None" = None

    def provider_data(self) -> BaseModel | None:
        """This request's ``X-LlamaStack-Provider-Data``, validated for this provider.

        None when the request sent no header or the provider declares no
        validator. Keys meant for other providers are ignored.
        """
        raw = raw_provider_data()
        validator = self.spec.provider_data_validator
        if raw is None or validator is None:
            return None
        try:
            return validator.model_validate(raw)
        except ValidationError as exc:
            err = exc.errors()[0]
            loc = ".".join(str(p) for p in err["loc"])
            raise BadRequestError(err["msg"], field=f"X-LlamaStack-Provider-Data.{loc}") from None
