"""TLS, mutual TLS and certificate rotation without a restart, with
certificates made in the test (tests/certs.py)."""

from __future__ import annotations

import contextlib
import secrets
import time

import grpc
import pytest

from socialgraph.v1 import admin_pb2 as apb
from socialgraph.v1 import social_graph_pb2 as pb

from .certs import Authority, Issued, self_signed
from .support import Client, new_user, raises
from .test_auth import GRAPH_TOKEN, STANDARD_TOKENS, serving, wait_until

FEED_SPIFFE = "spiffe://example.org/ns/prod/sa/feed"
BACKOFFICE_DNS = "backoffice.internal"


@pytest.fixture(scope="module")
def ca() -> Authority:
    return Authority("SocialGraph test CA")


def write_pair(directory, issued: Issued, stem: str = "server") -> tuple[str, str]:
    cert, key = directory / f"{stem}.pem", directory / f"{stem}-key.pem"
    key.write_bytes(issued.key)
    cert.write_bytes(issued.cert)
    return str(cert), str(key)


def server_cert(ca: Authority) -> Issued:
    return ca.issue("socialgraph", dns=("localhost",), ips=("127.0.0.1",))


@contextlib.contextmanager
def secure_client(address: str, root: bytes, identity: Issued | None = None):
    credentials = grpc.ssl_channel_credentials(
        root, identity.key if identity else None, identity.cert if identity else None
    )
    # A channel of its own: a new connection and handshake every time.
    with grpc.secure_channel(address, credentials, options=[("grpc.use_local_subchannel_pool", 1)]) as channel:
        yield Client(channel)


def follow(client: Client, metadata=None):
    return client.graph.Follow(
        pb.FollowRequest(follower_id=new_user(), followee_id=new_user()), timeout=5, metadata=metadata
    )


def stats(client: Client):
    return client.admin.GetStats(apb.GetStatsRequest(), timeout=5)


def refused_handshake(call) -> None:
    started = time.monotonic()
    with pytest.raises(grpc.RpcError) as raised:
        call()
    assert raised.value.code() == grpc.StatusCode.UNAVAILABLE, raised.value.details()
    assert time.monotonic() - started < 4


@pytest.fixture
def tls_files(tmp_path, ca):
    cert, key = write_pair(tmp_path, server_cert(ca))
    return {"tls_cert": cert, "tls_key": key}


def test_tls_serves_and_a_plaintext_client_is_refused(tmp_path, ca, tls_files):
    with serving(tmp_path, **tls_files) as (_, address):
        with secure_client(address, ca.pem) as client:
            assert follow(client).created
            assert stats(client).users == 0
        with grpc.insecure_channel(address) as channel:
            refused_handshake(lambda: follow(Client(channel)))
        with secure_client(address, Authority("another CA").pem) as client:
            refused_handshake(lambda: follow(client))


def test_a_rotated_certificate_is_served_to_new_connections_without_a_restart(tmp_path, ca, tls_files):
    successor = Authority("successor CA")
    with serving(tmp_path, **tls_files) as (_, address), secure_client(address, ca.pem) as held:
        assert follow(held).created
        with secure_client(address, successor.pem) as client:
            refused_handshake(lambda: follow(client))
        # A key that does not match the certificate yet (mid-rotation) is not taken.
        new = server_cert(successor)
        with open(tls_files["tls_key"], "wb") as handle:
            handle.write(new.key)
        with secure_client(address, ca.pem) as client:
            assert follow(client).created
        with open(tls_files["tls_cert"], "wb") as handle:
            handle.write(new.cert)

        def successor_accepted() -> bool:
            with secure_client(address, successor.pem) as client:
                try:
                    return follow(client).created
                except grpc.RpcError:
                    return False

        wait_until(successor_accepted)
        with secure_client(address, ca.pem) as client:
            refused_handshake(lambda: follow(client))
        assert follow(held).created  # the connection made before the rotation stays up


@pytest.fixture
def mtls(tmp_path, ca, tls_files):
    client_ca = tmp_path / "clients-ca.pem"
    client_ca.write_bytes(ca.pem)
    return {**tls_files, "tls_client_ca": str(client_ca)}


def test_mutual_tls_refuses_clients_without_a_certificate_the_ca_signed(tmp_path, ca, mtls):
    feed = ca.issue("feed", uris=(FEED_SPIFFE,), client=True)
    with serving(tmp_path, **mtls) as (app, address):
        assert app.auth is None  # certificates alone: any verified client may call
        with secure_client(address, ca.pem, feed) as client:
            assert follow(client).created
            assert stats(client).users == 0
        for identity in (None, Authority("stranger CA").issue("feed", uris=(FEED_SPIFFE,), client=True),
                         self_signed("feed")):
            with secure_client(address, ca.pem, identity) as client:
                refused_handshake(lambda: follow(client))


def test_mtls_identities_are_granted_scopes_by_configuration(tmp_path, ca, mtls):
    feed = ca.issue("feed", uris=(FEED_SPIFFE,), client=True)
    backoffice = ca.issue("backoffice", dns=(BACKOFFICE_DNS,), client=True)
    nobody = ca.issue("nobody", dns=("nobody.internal",), uris=("spiffe://example.org/ns/prod/sa/nobody",), client=True)
    tokens = tmp_path / "tokens.toml"
    tokens.write_text(STANDARD_TOKENS)
    scopes = f"{FEED_SPIFFE}=graph events, {BACKOFFICE_DNS}=admin"
    with serving(tmp_path, tls_client_scopes=scopes, auth_tokens_file=str(tokens), **mtls) as (_, address):
        with secure_client(address, ca.pem, feed) as client:
            assert follow(client).created
            with raises(grpc.StatusCode.PERMISSION_DENIED, "MISSING_SCOPE") as refused:
                stats(client)
            assert f"tls:{FEED_SPIFFE}" in refused.error.details()
        with secure_client(address, ca.pem, backoffice) as client:
            assert stats(client).users == 0
            with raises(grpc.StatusCode.PERMISSION_DENIED, "MISSING_SCOPE"):
                follow(client)
            # A bearer token speaks for the call instead of the certificate.
            assert follow(client, metadata=(("authorization", f"Bearer {GRAPH_TOKEN}"),)).created
            with raises(grpc.StatusCode.UNAUTHENTICATED, "UNAUTHENTICATED"):
                follow(client, metadata=(("authorization", f"Bearer {secrets.token_urlsafe(32)}"),))
        with (
            secure_client(address, ca.pem, nobody) as client,
            raises(grpc.StatusCode.UNAUTHENTICATED, "UNAUTHENTICATED"),
        ):
            follow(client)


def test_unusable_tls_files_stop_the_server_from_starting(tmp_path, ca):
    from server.app import InvalidConfiguration

    cert, _ = write_pair(tmp_path, server_cert(ca), "one")
    _, other_key = write_pair(tmp_path, server_cert(ca), "two")
    with (
        pytest.raises(InvalidConfiguration, match="does not belong"),
        serving(tmp_path, tls_cert=cert, tls_key=other_key),
    ):
        pass
    with (
        pytest.raises(InvalidConfiguration, match="tls_cert"),
        serving(tmp_path, tls_cert=other_key, tls_key=other_key),
    ):
        pass


@pytest.mark.e2e
def test_the_readme_security_example_runs_as_written(tmp_path, ca, tls_files):
    import os
    import re
    import subprocess
    import sys
    from pathlib import Path

    readme = (Path(__file__).parent.parent / "README.md").read_text()
    [example] = re.findall(r"```py\n(.*?)```", readme, flags=re.S)
    (tmp_path / "ca.pem").write_bytes(ca.pem)
    tokens = tmp_path / "tokens.toml"
    tokens.write_text(STANDARD_TOKENS)
    with serving(tmp_path, auth_tokens_file=str(tokens), **tls_files) as (_, address):
        result = subprocess.run(
            [sys.executable, "-c", example],
            env={**os.environ, "SOCIALGRAPH_ADDRESS": address, "SOCIALGRAPH_TOKEN": GRAPH_TOKEN},
            cwd=tmp_path, capture_output=True, text=True, timeout=60,
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout.splitlines() == ["0"]
        refused = subprocess.run(
            [sys.executable, "-c", example],
            env={**os.environ, "SOCIALGRAPH_ADDRESS": address, "SOCIALGRAPH_TOKEN": "wrong"},
            cwd=tmp_path, capture_output=True, text=True, timeout=60,
        )
        assert refused.returncode != 0 and "UNAUTHENTICATED" in refused.stderr


@pytest.mark.e2e
def test_the_health_command_speaks_the_servers_tls(tmp_path, ca, mtls):
    import subprocess

    from .support import socialgraph_command

    # A mesh certificate (SPIFFE SVIDs are) good for both ends of a connection.
    write_pair(tmp_path, ca.issue("socialgraph", dns=("localhost",), ips=("127.0.0.1",), client=True, server=True))
    with serving(tmp_path, **mtls) as (_, address):
        for args in (
            ("--tls-cert", mtls["tls_cert"], "--tls-key", mtls["tls_key"], "--tls-client-ca", mtls["tls_client_ca"]),
            (),
        ):
            result = subprocess.run([*socialgraph_command(), "health", "--listen", address, *args],
                                    capture_output=True, text=True, timeout=60)
            assert (result.returncode, result.stdout.strip()) == ((0, "SERVING") if args else (1, "")), result.stderr


def test_a_rotated_client_ca_is_trusted_by_new_connections(tmp_path, ca, mtls):
    successor = Authority("successor client CA")
    old_client = ca.issue("feed", uris=(FEED_SPIFFE,), client=True)
    new_client = successor.issue("feed", uris=(FEED_SPIFFE,), client=True)
    with serving(tmp_path, **mtls) as (_, address):
        with secure_client(address, ca.pem, new_client) as client:
            refused_handshake(lambda: follow(client))
        with open(mtls["tls_client_ca"], "wb") as handle:
            handle.write(successor.pem)

        def accepted() -> bool:
            with secure_client(address, ca.pem, new_client) as client:
                try:
                    return follow(client).created
                except grpc.RpcError:
                    return False

        wait_until(accepted)
        with secure_client(address, ca.pem, old_client) as client:
            refused_handshake(lambda: follow(client))
