"""With auth on, a service that no scope grants is refused to every
credential (default deny): the interceptor in front of a loopback server
that serves one such service beside the scoped ones, health and reflection."""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from server.auth import SCOPES, Authenticator, AuthInterceptor
from server.settings import Settings

from .support import raises
from .test_auth import bearer, list_services, tokens_toml

UNSCOPED = "example.v1.Unscoped"
ALL_SCOPES, NO_SCOPES = secrets.token_urlsafe(32), secrets.token_urlsafe(32)


@contextlib.contextmanager
def serving(tmp_path: Path, *, open_reflection: bool = False) -> Iterator[tuple[str, list[bytes]]]:
    """A server with AuthInterceptor over an unscoped echo service, health
    and reflection; yields its address and the requests the echo served."""
    path = tmp_path / "tokens.toml"
    path.write_text(tokens_toml(("everything", ALL_SCOPES, sorted(SCOPES)), ("nothing", NO_SCOPES, [])))
    authenticator = Authenticator(Settings(auth_tokens_file=str(path)).validate())
    served: list[bytes] = []

    def echo(request: bytes, _context: Any) -> bytes:
        served.append(request)
        return request

    def echo_stream(request: bytes, _context: Any) -> Iterator[bytes]:
        served.append(request)
        yield request

    server = grpc.server(
        futures.ThreadPoolExecutor(4),
        interceptors=[AuthInterceptor(authenticator, open_reflection=open_reflection)],
    )
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(UNSCOPED, {
        "Echo": grpc.unary_unary_rpc_method_handler(echo),
        "EchoStream": grpc.unary_stream_rpc_method_handler(echo_stream),
    }),))
    health_pb2_grpc.add_HealthServicer_to_server(health.HealthServicer(), server)
    reflection.enable_server_reflection((UNSCOPED, health.SERVICE_NAME, reflection.SERVICE_NAME), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield f"127.0.0.1:{port}", served
    finally:
        server.stop(0)


def echo(address: str, token: str | None, *, streaming: bool = False) -> bytes:
    with grpc.insecure_channel(address) as channel:
        metadata = bearer(token) if token is not None else None
        if streaming:
            stream: grpc.UnaryStreamMultiCallable[bytes, bytes] = channel.unary_stream(f"/{UNSCOPED}/EchoStream")
            return b"".join(stream(b"hi", metadata=metadata, timeout=5))
        unary: grpc.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(f"/{UNSCOPED}/Echo")
        return unary(b"hi", metadata=metadata, timeout=5)


@pytest.mark.parametrize("streaming", [False, True], ids=["unary", "stream"])
def test_a_service_no_scope_grants_is_denied_to_every_credential(tmp_path: Path, streaming: bool) -> None:
    with serving(tmp_path) as (address, served):
        for token in (ALL_SCOPES, NO_SCOPES):
            with raises(grpc.StatusCode.PERMISSION_DENIED, "MISSING_SCOPE") as refused:
                echo(address, token, streaming=streaming)
            assert "scope" not in refused.info.metadata  # no scope would grant it
            assert refused.error is not None and UNSCOPED in (refused.error.details() or "")
        assert served == []


@pytest.mark.parametrize("token", [None, "not-a-token"], ids=["missing", "unknown"])
def test_a_call_to_it_without_a_valid_credential_is_unauthenticated(tmp_path: Path, token: str | None) -> None:
    with serving(tmp_path) as (address, served):
        with raises(grpc.StatusCode.UNAUTHENTICATED, "UNAUTHENTICATED"):
            echo(address, token)
        assert served == []


def test_health_stays_open_and_reflection_needs_any_valid_credential(tmp_path: Path) -> None:
    with serving(tmp_path) as (address, _served):
        with grpc.insecure_channel(address) as channel:
            check = health_pb2_grpc.HealthStub(channel).Check  # type: ignore[attr-defined]
            assert check(health_pb2.HealthCheckRequest(), timeout=5).status == health_pb2.HealthCheckResponse.SERVING
        assert UNSCOPED in list_services(address, NO_SCOPES)
        with raises(grpc.StatusCode.UNAUTHENTICATED, "UNAUTHENTICATED"):
            list_services(address)
    with serving(tmp_path, open_reflection=True) as (address, _served):
        assert UNSCOPED in list_services(address)
        with raises(grpc.StatusCode.PERMISSION_DENIED, "MISSING_SCOPE"):
            echo(address, ALL_SCOPES)
