"""OpenTelemetry: a server span per RPC continuing the caller's W3C
traceparent, and a span per SQL transaction beneath it."""

from __future__ import annotations

import contextlib
import secrets

import grpc
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from server.app import App
from server.settings import Settings
from socialgraph.v1 import social_graph_pb2 as pb

from .support import Client, new_user, raises

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"


@contextlib.contextmanager
def traced_server(tmp_path, **overrides):
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    settings = Settings(listen="127.0.0.1:0", database_url=f"sqlite:///{tmp_path}/t-{secrets.token_hex(4)}.db",
                        threads=4, health_interval=60, **overrides).validate()
    app = App(settings, tracer_provider=provider)
    app.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{app.port}") as channel:
            yield Client(channel), exporter
    finally:
        app.stop(0)
        provider.shutdown()


def test_a_call_continues_the_callers_trace_with_a_span_per_transaction(tmp_path):
    with traced_server(tmp_path) as (client, exporter):
        a, b = new_user(), new_user()
        client.graph.Follow(pb.FollowRequest(follower_id=a, followee_id=b),
                            metadata=(("traceparent", f"00-{TRACE_ID}-{PARENT_ID}-01"),))
        spans = exporter.get_finished_spans()
    [server] = [s for s in spans if s.kind == SpanKind.SERVER]
    assert server.name == "socialgraph.v1.SocialGraphService/Follow"
    assert format(server.context.trace_id, "032x") == TRACE_ID
    assert format(server.parent.span_id, "016x") == PARENT_ID and server.parent.is_remote
    assert server.attributes["rpc.grpc.status_code"] == 0
    sql = [s for s in spans if s.kind == SpanKind.CLIENT]
    assert [s.name for s in sql] == ["sql read_write"]
    assert sql[0].parent.span_id == server.context.span_id and sql[0].context.trace_id == server.context.trace_id
    assert sql[0].attributes["db.system"] == "sqlite"


def test_without_a_traceparent_each_call_starts_a_trace_and_errors_are_marked(tmp_path):
    with traced_server(tmp_path) as (client, exporter):
        user = new_user()
        client.counts(user)
        client.counts(new_user())
        with raises(grpc.StatusCode.INVALID_ARGUMENT, "INVALID_USER_ID"):
            client.follow("nope", user)
        spans = exporter.get_finished_spans()
    servers = [s for s in spans if s.kind == SpanKind.SERVER]
    assert [s.name.rpartition("/")[2] for s in servers] == ["GetCounts", "GetCounts", "Follow"]
    assert all(s.parent is None for s in servers)
    assert len({s.context.trace_id for s in servers}) == 3
    assert servers[2].status.status_code == StatusCode.ERROR
    assert servers[2].attributes["rpc.grpc.status_code"] == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    # The first GetCounts reads SQL inside its span; the refused Follow never opens a transaction.
    children = {s.parent.span_id for s in spans if s.kind == SpanKind.CLIENT}
    assert servers[0].context.span_id in children and servers[2].context.span_id not in children


def test_an_unsampled_traceparent_records_nothing(tmp_path):
    with traced_server(tmp_path) as (client, exporter):
        client.graph.GetCounts(pb.GetCountsRequest(user_ids=[new_user()]),
                               metadata=(("traceparent", f"00-{TRACE_ID}-{PARENT_ID}-00"),))
        assert exporter.get_finished_spans() == ()


def test_otlp_export_reaches_the_configured_endpoint(tmp_path):
    import http.server
    import threading

    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    received: list[bytes] = []

    class Collector(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            received.append(self.rfile.read(int(self.headers["Content-Length"])))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    collector = http.server.HTTPServer(("127.0.0.1", 0), Collector)
    threading.Thread(target=collector.serve_forever, daemon=True).start()
    settings = Settings(listen="127.0.0.1:0", database_url=f"sqlite:///{tmp_path}/otlp.db", threads=4,
                        health_interval=60, trace_exporter="otlp",
                        trace_endpoint=f"http://127.0.0.1:{collector.server_port}/v1/traces").validate()
    app = App(settings)
    app.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{app.port}") as channel:
            Client(channel).counts(new_user())
    finally:
        app.stop(0)  # flushes the batch
        collector.shutdown()
    names = {span.name for body in received for resource in ExportTraceServiceRequest.FromString(body).resource_spans
             for scope in resource.scope_spans for span in scope.spans}
    assert {"socialgraph.v1.SocialGraphService/GetCounts", "sql read_only"} <= names
