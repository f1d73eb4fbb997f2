"""The otel sink: the OpenTelemetry SDK's OTLP/HTTP exporters send a request's spans and its
metrics to a test receiver on loopback (a tiny aiohttp server decoding them with opentelemetry-proto)."""

from __future__ import annotations

import pytest
from aiohttp import web
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest, ExportTraceServiceResponse

from tests.support import app_from_yaml, serve_app

from .test_meta_reference import CHAT, RUN_CONFIG, TRACEPARENT


class OtlpReceiver:
    """Test double of an OpenTelemetry collector's OTLP/HTTP traces and metrics endpoints."""

    def __init__(self) -> None:
        self.requests: list[ExportTraceServiceRequest] = []
        self.metric_requests: list[ExportMetricsServiceRequest] = []
        self.content_types: list[str] = []

    async def handle_metrics(self, request: web.Request) -> web.Response:
        message = ExportMetricsServiceRequest()
        message.ParseFromString(await request.read())
        self.metric_requests.append(message)
        return web.Response(body=ExportMetricsServiceResponse().SerializeToString(),
                            content_type="application/x-protobuf")

    async def handle(self, request: web.Request) -> web.Response:
        message = ExportTraceServiceRequest()
        message.ParseFromString(await request.read())
        self.requests.append(message)
        self.content_types.append(request.content_type)
        return web.Response(body=ExportTraceServiceResponse().SerializeToString(), content_type="application/x-protobuf")

    async def __aenter__(self) -> "OtlpReceiver":
        app = web.Application()
        app.router.add_post("/v1/traces", self.handle)
        app.router.add_post("/v1/metrics", self.handle_metrics)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}/v1/traces"
        return self

    async def __aexit__(self, *exc) -> None:
        await self.runner.cleanup()

    def histograms(self) -> dict[str, list[object]]:
        """Data points of every histogram received, by metric name."""
        out: dict[str, list[object]] = {}
        for message in self.metric_requests:
            for resource_metrics in message.resource_metrics:
                for scope in resource_metrics.scope_metrics:
                    for metric in scope.metrics:
                        out.setdefault(metric.name, []).extend(metric.histogram.data_points)
        return out

    def spans(self) -> list[tuple[str, object]]:
        """(service.name, span) of every span received."""
        out = []
        for message in self.requests:
            for resource_spans in message.resource_spans:
                service = {a.key: a.value.string_value for a in resource_spans.resource.attributes}["service.name"]
                out += [(service, span) for scope in resource_spans.scope_spans for span in scope.spans]
        return out


async def test_a_traced_request_reaches_an_otlp_collector(tmp_path, upstream, monkeypatch):
    monkeypatch.setenv("POLYSTACK_HOME", str(tmp_path / "home"))
    async with OtlpReceiver() as receiver:
        config = RUN_CONFIG.format(url=upstream.url, store="null").replace(
            "sinks: [sqlite], store: null", f'sinks: "otel,sqlite", service_name: polystack-test, otel_endpoint: "{receiver.url}"')
        async with serve_app(app_from_yaml(tmp_path, config)) as client:
            response = await client.post("/v1/chat/completions", json=CHAT, headers={"traceparent": TRACEPARENT})
            assert response.status_code == 200
        # shutdown flushed the SDK's batch processor and its metric reader
        spans = receiver.spans()
        histograms = receiver.histograms()
    assert receiver.content_types and set(receiver.content_types) == {"application/x-protobuf"}
    assert {service for service, _ in spans} == {"polystack-test"}
    by_name = {span.name: span for _, span in spans}
    assert {"POST /v1/chat/completions", "router inference.openai_chat_completion",
            "provider inference.openai_chat_completion", "upstream POST"} <= set(by_name)
    root, provider = by_name["POST /v1/chat/completions"], by_name["provider inference.openai_chat_completion"]
    assert root.trace_id.hex() == "0af7651916cd43dd8448eb211c80319c"
    assert root.parent_span_id.hex() == "b7ad6b7169203331"  # the client's span
    assert {span.trace_id for _, span in spans} == {root.trace_id}
    attributes = {a.key: a.value for a in provider.attributes}
    assert attributes["gen_ai.request.model"].string_value == "upstream-model"
    assert attributes["gen_ai.usage.input_tokens"].int_value == 5
    assert provider.end_time_unix_nano >= provider.start_time_unix_nano > 0
    # the MetricEvents of the call travel as span events
    metrics = {e.name: {a.key: a.value for a in e.attributes} for e in provider.events}
    assert metrics.keys() == {"latency_ms", "prompt_tokens", "completion_tokens", "total_tokens"}
    assert metrics["total_tokens"]["value"].int_value == 9 and metrics["latency_ms"]["unit"].string_value == "ms"
    # and as OTLP metrics: a histogram per metric, tagged with the model
    assert {"latency_ms", "prompt_tokens", "completion_tokens", "total_tokens"} <= histograms.keys()
    [total] = histograms["total_tokens"]
    assert total.count == 1 and total.sum == 9
    assert {a.key: a.value.string_value for a in total.attributes} == {"model_id": "upstream-model"}


def test_an_unknown_sink_is_refused_naming_it(tmp_path):
    from stack.errors import ConfigError

    config = RUN_CONFIG.format(url="http://127.0.0.1:1/v1", store="null").replace("sinks: [sqlite]", "sinks: [sqlite, jaeger]")
    with pytest.raises(ConfigError, match="sinks"):
        app_from_yaml(tmp_path, config)
