"""Store configs, compatible with llama-stack 0.1.x run.yaml `kvstore` blocks."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
MEMORY = ":memory:"


def polystack_home() -> Path:
    """The state directory: `$POLYSTACK_HOME`, default `~/.polystack`."""
    return Path(os.environ.get("POLYSTACK_HOME") or "~/.polystack").expanduser()


def default_db_path(image_name: str, name: str) -> Path:
    """Where a store without an explicit `db_path` lives:
    `$POLYSTACK_HOME/<image_name>/<name>.db`."""
    for label, part in (("image_name", image_name), ("name", name)):
        if not part or "/" in part or "\\" in part or part in (".", ".."):
            raise ValueError(f"{label} must be a plain file name, got {part!r}")
    return polystack_home() / image_name / f"{name}.db"


def _check_namespace(value: str | None) -> str | None:
    if value is not None and not _IDENTIFIER.fullmatch(value):
        raise ValueError(
            "must start with a letter or '_' and contain only letters, digits and '_'"
        )
    return value


Namespace = Annotated[str | None, AfterValidator(_check_namespace)]


class SqliteStoreConfig(BaseModel):
    """A SQLite file on local disk (the default store)."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["sqlite"] = Field("sqlite", description="Store backend.")
    db_path: str | None = Field(
        None,
        description="Path of the database file ('~' is expanded; ':memory:' keeps it "
        "in memory). Unset: $POLYSTACK_HOME/<image_name>/<store>.db.",
    )
    namespace: Namespace = Field(
        None,
        description="Prefix that keeps this store's keys (KV) or tables (SQL) apart "
        "from others sharing the same database.",
    )

    def resolve_path(self, default_path: Path | str | None) -> Path | None:
        """The file to open (None for ':memory:')."""
        if self.db_path == MEMORY:
            return None
        raw = self.db_path if self.db_path is not None else default_path
        if raw is None:
            raise ValueError("SqliteStoreConfig.db_path is unset and no default_path was given")
        return Path(raw).expanduser()


# An empty password (`password: ${env.POSTGRES_PASSWORD:=}` with the variable
# unset) means none given, so libpq's defaults (PGPASSWORD, ~/.pgpass) apply.
Password = Annotated[str | None, AfterValidator(lambda value: value or None)]


class PostgresStoreConfig(BaseModel):
    """A PostgreSQL database; several server replicas can share it."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["postgres"] = Field(description="Store backend.")
    host: str = Field("localhost", description="Server host name, IP, or Unix socket directory.")
    port: int = Field(5432, ge=1, le=65535, description="Server port.")
    db: str = Field("llamastack", description="Database name.")
    user: str | None = Field(None, description="User name (unset: libpq default, e.g. $PGUSER).")
    password: Password = Field(None, repr=False, description="Password (unset: libpq default).")
    namespace: Namespace = Field(
        None,
        description="Prefix that keeps this store's keys (KV) or tables (SQL) apart "
        "from others sharing the same database.",
    )
    table_name: str = Field("llamastack_kvstore", description="Table that holds a KV store.")
    dsn: str | None = Field(
        None,
        repr=False,
        description="libpq connection string or URI; when set it wins over "
        "host/port/db/user/password.",
    )
    pool_max_size: int = Field(10, ge=1, description="Most connections this process opens.")
    connect_timeout: float = Field(10.0, gt=0, description="Seconds to wait for a connection.")

    @field_validator("table_name")
    @classmethod
    def _check_table_name(cls, value: str) -> str:
        if not _IDENTIFIER.fullmatch(value) or len(value) > 63:
            raise ValueError(
                "must be at most 63 characters, start with a letter or '_' and "
                "contain only letters, digits and '_'"
            )
        return value


StoreConfig = Annotated[SqliteStoreConfig | PostgresStoreConfig, Field(discriminator="type")]
