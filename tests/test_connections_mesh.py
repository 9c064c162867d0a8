"""Connection management for meshes and L4 balancers: a channel held past
``max_connection_age`` is moved to a new connection (GOAWAY) without a
failed call."""

from __future__ import annotations

import threading
import time

import grpc

from server.app import App, connection_options
from server.settings import Settings

from .support import Client, new_user


class PeerRecorder(grpc.ServerInterceptor):
    """Remembers the client address (host:port, one per connection) of every call."""

    def __init__(self) -> None:
        self.peers: set[str] = set()
        self._lock = threading.Lock()

    def intercept_service(self, continuation, handler_call_details):
        handler = continuation(handler_call_details)
        if handler is None or handler.unary_unary is None:
            return handler
        behavior = handler.unary_unary

        def recorded(request, context):
            with self._lock:
                self.peers.add(context.peer())
            return behavior(request, context)

        return handler._replace(unary_unary=recorded)


def test_a_channel_held_past_the_connection_age_moves_without_a_failed_call(tmp_path):
    recorder = PeerRecorder()

    class Recorded(App):
        def interceptors(self):
            return [*super().interceptors(), recorder]

    settings = Settings(
        listen="127.0.0.1:0", database_url=f"sqlite:///{tmp_path}/age.db", threads=4, health_interval=60,
        max_connection_age=0.5, max_connection_age_grace=1.0,
    ).validate()
    app = Recorded(settings)
    app.start()
    try:
        user = new_user()
        calls = failures = 0
        with grpc.insecure_channel(f"127.0.0.1:{app.port}") as channel:
            client = Client(channel)
            deadline = time.monotonic() + 3.5
            while time.monotonic() < deadline:
                try:
                    client.counts(user)
                except grpc.RpcError:
                    failures += 1
                calls += 1
                time.sleep(0.01)
    finally:
        app.stop(0)
    assert calls > 50 and failures == 0
    assert len(recorder.peers) >= 3, recorder.peers  # one connection per half second of age, roughly


def test_connection_settings_reach_grpc():
    options = dict(connection_options(Settings(keepalive_time=45, max_connection_age=0, max_concurrent_streams=7)))
    assert options["grpc.keepalive_time_ms"] == 45000
    assert options["grpc.max_concurrent_streams"] == 7
    assert "grpc.max_connection_age_ms" not in options
    defaults = dict(connection_options(Settings()))
    assert defaults["grpc.max_connection_age_ms"] == 300000 and defaults["grpc.max_connection_age_grace_ms"] == 30000
    assert defaults["grpc.http2.min_recv_ping_interval_without_data_ms"] == 10000
    assert defaults["grpc.keepalive_permit_without_calls"] == 1
