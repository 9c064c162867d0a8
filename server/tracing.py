"""OpenTelemetry traces: a server span per RPC, continuing the caller's W3C
``traceparent``, with a span per SQL transaction beneath it
(storage/tracing.py). Off unless ``trace_exporter`` is set."""

from __future__ import annotations

from typing import Any

import grpc
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from .interceptors import Behavior, UnaryWrapper
from .settings import Settings

_PROPAGATOR = TraceContextTextMapPropagator()


def tracer_provider(settings: Settings) -> TracerProvider | None:
    """The provider the settings ask for, exporting in batches; None when tracing is off."""
    if settings.trace_exporter == "none":
        return None
    exporter: SpanExporter
    if settings.trace_exporter == "otlp":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter(endpoint=settings.trace_endpoint or None)
    else:
        exporter = ConsoleSpanExporter()
    provider = TracerProvider(
        resource=Resource.create({"service.name": "socialgraph"}),
        sampler=ParentBased(TraceIdRatioBased(settings.trace_sample_ratio)),
    )
    provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider


class TracingInterceptor(UnaryWrapper):
    """Runs each handler inside a SERVER span named after the method."""

    def __init__(self, tracer: trace.Tracer) -> None:
        self._tracer = tracer
        super().__init__()

    def wrap_unary(self, method: str, behavior: Behavior) -> Behavior:
        return _traced(self._tracer, method, behavior)


def _traced(tracer: trace.Tracer, method: str, behavior: Behavior) -> Behavior:
    service, _, name = method.strip("/").partition("/")
    attributes = {"rpc.system": "grpc", "rpc.service": service, "rpc.method": name}

    def traced(request: Any, context: grpc.ServicerContext) -> Any:
        parent = _PROPAGATOR.extract(carrier=dict(context.invocation_metadata()))
        token = otel_context.attach(parent)
        try:
            with tracer.start_as_current_span(
                f"{service}/{name}", kind=trace.SpanKind.SERVER, attributes=attributes,
                record_exception=False, set_status_on_exception=False,
            ) as span:
                try:
                    return behavior(request, context)
                finally:
                    code = context.code() or grpc.StatusCode.OK  # type: ignore[attr-defined]  # grpcio has it; its stubs lack it
                    span.set_attribute("rpc.grpc.status_code", code.value[0])
                    if code is not grpc.StatusCode.OK:
                        span.set_status(trace.Status(trace.StatusCode.ERROR, code.name))
        finally:
            otel_context.detach(token)

    return traced
