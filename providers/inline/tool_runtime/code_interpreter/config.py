"""Config of ``inline::code-interpreter`` (pydantic only: cheap to import)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class CodeInterpreterConfig(BaseModel):
    """``config:`` of an ``inline::code-interpreter`` provider; ``config: {}`` works."""

    model_config = ConfigDict(extra="forbid")

    sandbox: Literal["auto", "bwrap", "subprocess"] = Field(
        "auto",
        description="auto: bubblewrap when `bwrap` works on this machine, else a subprocess; bwrap: require "
        "bubblewrap (start-up fails without it); subprocess: a plain subprocess with resource limits "
        "(and no network when `unshare -rn` is permitted)",
    )
    timeout_seconds: float = Field(
        10.0, gt=0, le=3600, description="Wall-clock limit of one run; the whole process group is killed after it"
    )
    cpu_seconds: int = Field(10, ge=1, le=3600, description="CPU time limit of each process of a run (RLIMIT_CPU)")
    memory_mb: int = Field(
        512, ge=64, le=1 << 20, description="Address-space limit of each process of a run in MiB (RLIMIT_AS)"
    )
    max_file_mb: int = Field(64, ge=1, le=1 << 20, description="Largest file a run may write, in MiB (RLIMIT_FSIZE)")
    max_output_bytes: int = Field(
        64 * 1024, ge=1024, le=64 << 20,
        description="Bytes of stdout and of stderr kept each; the rest is dropped and the output marked truncated",
    )
    max_concurrent_runs: int = Field(4, ge=1, le=1024, description="Runs at once; more requests wait their turn")
    python: str | None = Field(
        None,
        description="Python executable that runs the code (default: the server's own, so the packages installed "
        "next to polystack are importable)",
    )
