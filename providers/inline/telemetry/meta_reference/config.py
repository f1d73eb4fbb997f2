"""Config of ``inline::meta-reference`` telemetry: llama-stack 0.1.0's TelemetryConfig fields, and a few more."""

from __future__ import annotations

from enum import Enum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from stack.storage import StoreConfig


class TelemetrySink(str, Enum):
    console = "console"
    sqlite = "sqlite"
    otel = "otel"


class MetaReferenceTelemetryConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    service_name: str = Field("polystack", description="service.name of the spans sent to OpenTelemetry.")
    sinks: list[TelemetrySink] = Field(
        default_factory=lambda: [TelemetrySink.sqlite],
        description="Where finished spans go: console (the server log), sqlite (the span store that the "
        "query routes read) and otel (OTLP/HTTP to otel_endpoint). A comma-separated string works too.",
    )
    sqlite_db_path: str | None = Field(
        None, description="SQLite file of the span store. Unset: $POLYSTACK_HOME/<image_name>/trace_store.db."
    )
    store: StoreConfig | None = Field(
        None, description="The span store as a store config (type: postgres lets replicas share it); "
        "overrides sqlite_db_path.",
    )
    span_writer: Literal["process", "thread"] = Field(
        "process", description="Who writes request spans to the span store: process (a child process of "
        "the server, so the writing never competes with requests for the interpreter) or thread (the "
        "store's writer thread in the server process). An in-memory SQLite store always uses thread.",
    )
    span_writer_backlog_mb: int = Field(
        64, ge=1, le=4096, description="span_writer: process: MiB of encoded spans (~0.6 KiB a "
        "proxied request of four spans) the server holds for the writer process, which writes at the lowest CPU priority "
        "(SCHED_IDLE) and so falls behind while requests keep every core busy. When a new batch "
        "would pass it, the oldest are dropped (counted in /v1/health: span_writer_dropped).",
    )
    span_log_mb: int = Field(
        32, ge=1, le=4096, description="span_writer: process: the writer stores request spans as they come "
        "(the span log) and turns them into the rows that queries read when a query needs them, when the "
        "server is idle for 2 s, or when what it logged passes this many MiB (or a minute): then it folds "
        "at the lowest CPU priority between batches. A query after a long burst waits for the fold "
        "(~25 µs a request).",
    )
    span_writer_read_wait: float = Field(
        10.0, gt=0, description="span_writer: process: most seconds a trace or span query waits for the "
        "writer process to store the spans queued before it; past that it answers from what is stored "
        "(logged). Without CAP_SYS_NICE the writer cannot leave its idle priority for a query, and "
        "under sustained full load it would otherwise wait as long as the load lasts.",
    )
    otel_endpoint: str = Field(
        "http://localhost:4318/v1/traces", description="OTLP/HTTP traces endpoint of the collector (sink otel)."
    )
    otel_metrics_endpoint: str | None = Field(
        None, description="OTLP/HTTP metrics endpoint (sink otel: MetricEvents as histograms). Unset: "
        "otel_endpoint with /v1/traces replaced by /v1/metrics.",
    )
    otel_headers: dict[str, str] = Field(default_factory=dict, description="Extra headers sent to the collector.")
    max_buffer: int = Field(
        10_000, ge=1, description="Finished spans and events held for the sinks; when full the oldest are "
        "dropped (and counted in /v1/health) rather than slowing requests.",
    )
    flush_interval: float = Field(
        1.0, gt=0, description="Seconds between flushes of the buffer to the sinks (sooner when 4096 spans wait).")
    sample_rate: float = Field(
        1.0, ge=0, le=1, description="Share of requests recorded (head sampling) when the caller sends no "
        "traceparent; one with a traceparent is recorded when its sampled flag is set.",
    )
    ttl_seconds: int | None = Field(
        None, ge=1, description="How long the span store keeps request traces; unset: until deleted. Posted "
        "events and spans are kept for their own ttl_seconds (0: like request traces).",
    )
    prune_interval: float = Field(
        60.0, gt=0, description="Seconds between deletions of expired spans and events from the span store.")

    @field_validator("sinks", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        if isinstance(value, str):  # llama-stack run configs: sinks: ${env.TELEMETRY_SINKS:console,sqlite}
            return [part.strip() for part in value.split(",") if part.strip()]
        return value
