"""Scoped bearer credentials: hashed static tokens and JWTs, checked by one
interceptor that exists only when auth is configured."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import signal
import time

import grpc
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from grpc_health.v1 import health_pb2
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from harness import health_stub
from server.app import App, InvalidConfiguration
from server.auth import AuthInterceptor
from server.settings import Settings
from socialgraph.v1 import admin_pb2 as apb
from socialgraph.v1 import watch_pb2, watch_pb2_grpc

from .support import Client, new_user, raises, running_server

GRAPH_TOKEN, ADMIN_TOKEN, BOTH_TOKEN = (secrets.token_urlsafe(32) for _ in range(3))
ISSUER, AUDIENCE = "https://idp.example.org", "socialgraph"


def sha256(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def tokens_toml(*entries: tuple[str, str, list[str]]) -> str:
    return "".join(
        f'[[token]]\nname = "{name}"\nsha256 = "{sha256(token)}"\nscopes = {json.dumps(scopes)}\n\n'
        for name, token, scopes in entries
    )


STANDARD_TOKENS = tokens_toml(
    ("feed", GRAPH_TOKEN, ["graph"]), ("backoffice", ADMIN_TOKEN, ["admin"]), ("ops", BOTH_TOKEN, ["graph", "admin"])
)


@contextlib.contextmanager
def serving(tmp_path, **overrides):
    """An App on a free loopback port over a fresh SQLite file; yields (app, address)."""
    settings = Settings(
        listen="127.0.0.1:0", database_url=f"sqlite:///{tmp_path}/auth-{secrets.token_hex(4)}.db", threads=8,
        health_interval=60, **overrides,
    ).validate()
    app = App(settings)
    app.start()
    try:
        yield app, f"127.0.0.1:{app.port}"
    finally:
        app.stop(0)


def bearer(token: str) -> tuple[tuple[str, str]]:
    return (("authorization", f"Bearer {token}"),)


def follow(address: str, token: str | None = None, *, raw: str | None = None):
    metadata = bearer(token) if token is not None else ((("authorization", raw),) if raw is not None else None)
    with grpc.insecure_channel(address) as channel:
        from socialgraph.v1 import social_graph_pb2 as pb

        return Client(channel).graph.Follow(
            pb.FollowRequest(follower_id=new_user(), followee_id=new_user()), metadata=metadata, timeout=5
        )


def stats(address: str, token: str | None = None):
    with grpc.insecure_channel(address) as channel:
        return Client(channel).admin.GetStats(
            apb.GetStatsRequest(), metadata=bearer(token) if token else None, timeout=5
        )


def list_services(address: str, token: str | None = None) -> list[str]:
    with grpc.insecure_channel(address) as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        # types-grpcio-reflection leaves the stub's methods untyped.
        responses = stub.ServerReflectionInfo(  # type: ignore[operator]
            iter([reflection_pb2.ServerReflectionRequest(list_services="")]),
            metadata=bearer(token) if token else None,
            timeout=5,
        )
        return [s.name for r in responses for s in r.list_services_response.service]


def health_check(address: str) -> int:
    with grpc.insecure_channel(address) as channel:
        return health_stub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5).status


@pytest.fixture
def tokens_file(tmp_path):
    path = tmp_path / "tokens.toml"
    path.write_text(STANDARD_TOKENS)
    return path


# ------------------------------------------------------------------ off


def test_without_auth_there_is_no_interceptor_and_no_credential_is_needed(tmp_path):
    with serving(tmp_path) as (app, address):
        assert app.auth is None
        interceptors = app.interceptors()
        assert interceptors and not any(isinstance(i, AuthInterceptor) for i in interceptors)
        assert follow(address).created
        assert stats(address).users == 0


# ---------------------------------------------------------- static tokens


def test_static_tokens_grant_their_scopes(tmp_path, tokens_file):
    with serving(tmp_path, auth_tokens_file=str(tokens_file)) as (app, address):
        assert app.auth is not None
        assert follow(address, GRAPH_TOKEN).created
        assert follow(address, BOTH_TOKEN).created
        assert stats(address, ADMIN_TOKEN).users == 0
        assert stats(address, BOTH_TOKEN).users == 0
        with raises(grpc.StatusCode.PERMISSION_DENIED, "MISSING_SCOPE") as refused:
            stats(address, GRAPH_TOKEN)
        assert refused.info.metadata["scope"] == "admin"
        assert "token:feed" in refused.error.details()
        with raises(grpc.StatusCode.PERMISSION_DENIED, "MISSING_SCOPE") as refused:
            follow(address, ADMIN_TOKEN)
        assert refused.info.metadata["scope"] == "graph"


def first_watch_message(address: str, token: str):
    with grpc.insecure_channel(address) as channel:
        stream = watch_pb2_grpc.WatchServiceStub(channel).Watch(
            watch_pb2.WatchRequest(), metadata=bearer(token), timeout=5
        )
        try:
            return next(stream)
        finally:
            stream.cancel()


def test_watch_needs_the_events_scope(tmp_path):
    events_token = secrets.token_urlsafe(32)
    path = tmp_path / "tokens.toml"
    path.write_text(tokens_toml(("feed", GRAPH_TOKEN, ["graph", "admin"]), ("stream", events_token, ["events"])))
    with serving(tmp_path, auth_tokens_file=str(path)) as (_app, address):
        assert first_watch_message(address, events_token).WhichOneof("message") == "checkpoint"
        with raises(grpc.StatusCode.PERMISSION_DENIED, "MISSING_SCOPE") as refused:
            first_watch_message(address, GRAPH_TOKEN)
        assert refused.info.metadata["scope"] == "events"
        with raises(grpc.StatusCode.PERMISSION_DENIED, "MISSING_SCOPE"):
            follow(address, events_token)


@pytest.mark.parametrize(
    "header",
    [None, "Bearer " + "x" * 43, "Bearer", f"Basic {GRAPH_TOKEN}", GRAPH_TOKEN, "Bearer " + GRAPH_TOKEN[:-1]],
    ids=["missing", "unknown", "empty", "basic-scheme", "no-scheme", "truncated"],
)
def test_a_missing_or_invalid_credential_is_unauthenticated(tmp_path, tokens_file, header):
    with serving(tmp_path, auth_tokens_file=str(tokens_file)) as (_, address):
        with raises(grpc.StatusCode.UNAUTHENTICATED, "UNAUTHENTICATED") as refused:
            follow(address, raw=header)
        assert GRAPH_TOKEN not in refused.error.details()
        with raises(grpc.StatusCode.UNAUTHENTICATED, "UNAUTHENTICATED"):
            stats(address) if header is None else follow(address, raw=header)


def test_health_is_open_and_reflection_needs_any_valid_credential(tmp_path, tokens_file):
    with serving(tmp_path, auth_tokens_file=str(tokens_file)) as (_, address):
        assert health_check(address) == health_pb2.HealthCheckResponse.SERVING
        with raises(grpc.StatusCode.UNAUTHENTICATED, "UNAUTHENTICATED"):
            list_services(address)
        with raises(grpc.StatusCode.UNAUTHENTICATED, "UNAUTHENTICATED"):
            list_services(address, "not-a-token")
        assert "socialgraph.v1.AdminService" in list_services(address, GRAPH_TOKEN)
    with serving(tmp_path, auth_tokens_file=str(tokens_file), auth_open_reflection=True) as (_, address):
        assert "socialgraph.v1.SocialGraphService" in list_services(address)
        with raises(grpc.StatusCode.UNAUTHENTICATED, "UNAUTHENTICATED"):
            follow(address)


def test_a_changed_tokens_file_is_picked_up_and_a_broken_one_ignored(tmp_path, tokens_file):
    fresh = secrets.token_urlsafe(32)
    with serving(tmp_path, auth_tokens_file=str(tokens_file)) as (_, address):
        assert follow(address, GRAPH_TOKEN).created
        tokens_file.write_text(tokens_toml(("rotated", fresh, ["graph"])))
        wait_until(lambda: _accepted(address, fresh))
        with raises(grpc.StatusCode.UNAUTHENTICATED, "UNAUTHENTICATED"):
            follow(address, GRAPH_TOKEN)
        tokens_file.write_text('[[token]]\nname = "broken"\nsha256 = "abc"\n')
        time.sleep(2.5)  # two polls
        assert follow(address, fresh).created


def _accepted(address: str, token: str) -> bool:
    try:
        return follow(address, token).created
    except grpc.RpcError as error:
        assert error.code() == grpc.StatusCode.UNAUTHENTICATED
        return False


def wait_until(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.1)


@pytest.mark.parametrize(
    "text, complaint",
    [
        ('[[token]]\nsha256 = "%s"\nscopes = ["graph"]\n' % ("ab" * 32), "needs a name"),
        ('[[token]]\nname = "x"\nsha256 = "abcd"\nscopes = ["graph"]\n', "64 hex digits"),
        ('[[token]]\nname = "x"\nsha256 = "%s"\nscopes = ["root"]\n' % ("ab" * 32), "unknown scope"),
        ("[[token]\n", "auth_tokens_file"),
    ],
)
def test_an_unusable_tokens_file_stops_the_server_from_starting(tmp_path, text, complaint):
    path = tmp_path / "tokens.toml"
    path.write_text(text)
    with pytest.raises(InvalidConfiguration, match=complaint), serving(tmp_path, auth_tokens_file=str(path)):
        pass


# -------------------------------------------------------------------- JWTs


def _pem(public_key) -> bytes:
    return public_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


@pytest.fixture(scope="module")
def signing_keys():
    return {
        "RS256": rsa.generate_private_key(public_exponent=65537, key_size=2048),
        "ES256": ec.generate_private_key(ec.SECP256R1()),
        "EdDSA": ed25519.Ed25519PrivateKey.generate(),
    }


@pytest.fixture
def jwt_settings(tmp_path, signing_keys):
    path = tmp_path / "keys.pem"
    path.write_bytes(b"".join(_pem(key.public_key()) for key in signing_keys.values()))
    return {"auth_jwt_keys": str(path), "auth_jwt_issuer": ISSUER, "auth_jwt_audience": AUDIENCE}


def make_jwt(key, algorithm: str, *, scope: str = "graph", headers: dict | None = None, **claims) -> str:
    now = int(time.time())
    payload = {"iss": ISSUER, "aud": AUDIENCE, "sub": "system:serviceaccount:prod:feed", "exp": now + 300,
               "iat": now, "scope": scope, **claims}
    return jwt.encode({k: v for k, v in payload.items() if v is not None}, key, algorithm=algorithm, headers=headers)


@pytest.mark.parametrize("algorithm", ["RS256", "ES256", "EdDSA"])
def test_jwts_signed_by_a_configured_key_carry_their_scope_claim(tmp_path, jwt_settings, signing_keys, algorithm):
    key = signing_keys[algorithm]
    with serving(tmp_path, **jwt_settings) as (_, address):
        assert follow(address, make_jwt(key, algorithm, scope="graph events")).created
        assert stats(address, make_jwt(key, algorithm, scope="admin")).users == 0
        with raises(grpc.StatusCode.PERMISSION_DENIED, "MISSING_SCOPE") as refused:
            stats(address, make_jwt(key, algorithm, scope="graph"))
        assert "jwt:system:serviceaccount:prod:feed" in refused.error.details()
        with raises(grpc.StatusCode.PERMISSION_DENIED, "MISSING_SCOPE"):
            follow(address, make_jwt(key, algorithm, scope=None))


def test_bad_jwts_are_unauthenticated(tmp_path, jwt_settings, signing_keys):
    rs = signing_keys["RS256"]
    now = int(time.time())
    public_pem = _pem(rs.public_key())
    stranger = ec.generate_private_key(ec.SECP256R1())
    header, payload, _ = make_jwt(rs, "RS256").split(".")
    bad = {
        "expired": make_jwt(rs, "RS256", exp=now - 120),
        "not yet valid": make_jwt(rs, "RS256", nbf=now + 120),
        "wrong issuer": make_jwt(rs, "RS256", iss="https://evil.example.org"),
        "wrong audience": make_jwt(rs, "RS256", aud="another-service"),
        "no expiry": make_jwt(rs, "RS256", exp=None),
        "no audience": make_jwt(rs, "RS256", aud=None),
        "alg none": jwt.encode(
            {"iss": ISSUER, "aud": AUDIENCE, "exp": now + 60, "scope": "graph"}, None, algorithm="none"
        ),
        "HS256 with the public key": _hs256(
            public_pem, {"iss": ISSUER, "aud": AUDIENCE, "exp": now + 60, "scope": "graph"}
        ),
        "another key": make_jwt(stranger, "ES256"),
        "tampered payload": f"{header}.{payload[:-2]}xx.{_}",
        "garbage": "a.b.c",
    }
    with serving(tmp_path, **jwt_settings) as (_, address):
        for name, token in bad.items():
            started = time.monotonic()
            with raises(grpc.StatusCode.UNAUTHENTICATED, "UNAUTHENTICATED"):
                follow(address, token)
            assert time.monotonic() - started < 2, name


def _hs256(secret: bytes, claims: dict) -> str:
    """An HS256 token keyed with ``secret``, built by hand: PyJWT refuses PEM keys as HMAC secrets."""
    import base64
    import hmac as hmac_module

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    signing_input = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode()) + "." + b64(json.dumps(claims).encode())
    signature = hmac_module.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + b64(signature)


def test_clock_skew_within_the_leeway_is_accepted(tmp_path, jwt_settings, signing_keys):
    es = signing_keys["ES256"]
    now = int(time.time())
    with serving(tmp_path, auth_jwt_leeway=60, **jwt_settings) as (_, address):
        assert follow(address, make_jwt(es, "ES256", exp=now - 20)).created
        assert follow(address, make_jwt(es, "ES256", nbf=now + 20)).created
        with raises(grpc.StatusCode.UNAUTHENTICATED, "UNAUTHENTICATED"):
            follow(address, make_jwt(es, "ES256", exp=now - 90))


def test_a_jwks_document_selects_the_key_by_kid(tmp_path, signing_keys):
    rs, ed = signing_keys["RS256"], signing_keys["EdDSA"]
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    keys = []
    for kid, key in (("rsa-1", rs), ("ed-1", ed), ("rsa-2", other)):
        jwk = json.loads(_to_jwk(key.public_key()))
        keys.append({**jwk, "kid": kid, "use": "sig"})
    # Never used: HS256 is not accepted.
    keys.append({"kty": "oct", "k": "c3Nzc3Nzc3Nzc3Nzc3Nzc3Nzc3Nzc3Nzc3Nzc3Nzc3Nzc3M", "kid": "hmac"})
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({"keys": keys}))
    settings = {"auth_jwt_keys": str(path), "auth_jwt_issuer": ISSUER, "auth_jwt_audience": AUDIENCE}
    with serving(tmp_path, **settings) as (_, address):
        assert follow(address, make_jwt(rs, "RS256", headers={"kid": "rsa-1"})).created
        assert follow(address, make_jwt(ed, "EdDSA", headers={"kid": "ed-1"})).created
        assert follow(address, make_jwt(rs, "RS256")).created  # no kid: every RS256 key is tried
        with raises(grpc.StatusCode.UNAUTHENTICATED, "UNAUTHENTICATED"):
            follow(address, make_jwt(rs, "RS256", headers={"kid": "rsa-2"}))
        with raises(grpc.StatusCode.UNAUTHENTICATED, "UNAUTHENTICATED"):
            follow(address, jwt.encode({"iss": ISSUER, "aud": AUDIENCE, "exp": int(time.time()) + 60, "scope": "graph"},
                                       b"s" * 32, algorithm="HS256", headers={"kid": "hmac"}))


def _to_jwk(public_key) -> str:
    if isinstance(public_key, rsa.RSAPublicKey):
        return jwt.algorithms.RSAAlgorithm.to_jwk(public_key)
    return jwt.algorithms.OKPAlgorithm.to_jwk(public_key)


def test_static_tokens_and_jwts_work_side_by_side(tmp_path, tokens_file, jwt_settings, signing_keys):
    with serving(tmp_path, auth_tokens_file=str(tokens_file), **jwt_settings) as (_, address):
        assert follow(address, GRAPH_TOKEN).created
        assert follow(address, make_jwt(signing_keys["ES256"], "ES256")).created
        with raises(grpc.StatusCode.UNAUTHENTICATED, "UNAUTHENTICATED"):
            follow(address, "x.y.z")


# ---------------------------------------------------------------- process


def test_sighup_reloads_and_no_token_reaches_the_log(tmp_path, tokens_file):
    fresh = secrets.token_urlsafe(32)
    args = ("--database-url", f"sqlite:///{tmp_path}/hup.db", "--log-level", "DEBUG", "--grace-period", "1",
            "--auth-tokens-file", str(tokens_file))
    with running_server(*args) as (address, process):
        assert follow(address, GRAPH_TOKEN).created
        for token in ("Bearer " + fresh, "Bearer " + GRAPH_TOKEN[:-1], "Basic " + ADMIN_TOKEN):
            with raises(grpc.StatusCode.UNAUTHENTICATED, "UNAUTHENTICATED"):
                follow(address, raw=token)
        with raises(grpc.StatusCode.PERMISSION_DENIED, "MISSING_SCOPE"):
            stats(address, GRAPH_TOKEN)
        # Same size, inode and modification time: only SIGHUP can tell.
        before = os.stat(tokens_file)
        replacement = tokens_toml(("feed", fresh, ["graph"]), ("backoffice", ADMIN_TOKEN, ["admin"]),
                                  ("ops", BOTH_TOKEN, ["graph", "admin"]))
        assert len(replacement) == before.st_size
        with open(tokens_file, "r+") as handle:
            handle.write(replacement)
        os.utime(tokens_file, ns=(before.st_atime_ns, before.st_mtime_ns))
        time.sleep(1.5)
        assert follow(address, GRAPH_TOKEN).created
        process.send_signal(signal.SIGHUP)
        wait_until(lambda: _accepted(address, fresh))
        process.terminate()
        process.wait(timeout=30)
        output = process.output()
    assert "credentials reloaded" in output
    assert "refused" in output  # DEBUG lines for the refusals exist...
    for token in (GRAPH_TOKEN, ADMIN_TOKEN, BOTH_TOKEN, fresh, GRAPH_TOKEN[:-1]):
        assert token not in output  # ...and name no token


# ------------------------------------------------------------------- abuse


def test_an_oversized_header_is_refused_before_any_handler(tmp_path, tokens_file):
    with serving(tmp_path, auth_tokens_file=str(tokens_file)) as (_, address):
        # Between 8 and 16 KiB gRPC's default soft limit refuses a random
        # share of calls with RESOURCE_EXHAUSTED; the server raises it to
        # 16 KiB, so each of these reaches the token check.
        for _ in range(20):
            with raises(grpc.StatusCode.UNAUTHENTICATED, "UNAUTHENTICATED") as refused:
                follow(address, "x" * 12000)  # over our 8 KiB, under gRPC's 16 KiB
            assert "longer than" in refused.error.details()
        with pytest.raises(grpc.RpcError) as raised:
            follow(address, "x" * 65536)  # gRPC itself refuses metadata over 16 KiB
        assert raised.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert follow(address, GRAPH_TOKEN).created


def test_authenticated_callers_are_served_through_a_flood_of_unauthenticated_calls(tmp_path, tokens_file):
    from concurrent import futures

    from socialgraph.v1 import social_graph_pb2 as pb

    with serving(tmp_path, auth_tokens_file=str(tokens_file)) as (_, address):
        stop = time.monotonic() + 3
        codes: dict[grpc.StatusCode, int] = {}

        def flood() -> None:
            with grpc.insecure_channel(address) as channel:
                graph = Client(channel).graph
                for attempt in range(400):
                    if time.monotonic() > stop:
                        break
                    token = secrets.token_urlsafe(32) if attempt % 2 else None
                    try:
                        graph.GetCounts(pb.GetCountsRequest(user_ids=[new_user()]), timeout=5,
                                        metadata=bearer(token) if token else None)
                        codes[grpc.StatusCode.OK] = codes.get(grpc.StatusCode.OK, 0) + 1
                    except grpc.RpcError as error:
                        codes[error.code()] = codes.get(error.code(), 0) + 1

        served = 0
        with futures.ThreadPoolExecutor(8) as pool:
            flooding = [pool.submit(flood) for _ in range(6)]
            with grpc.insecure_channel(address) as channel:
                client = Client(channel)
                user = new_user()
                while not all(f.done() for f in flooding):
                    assert client.graph.GetCounts(
                        pb.GetCountsRequest(user_ids=[user]), timeout=5, metadata=bearer(GRAPH_TOKEN)
                    ).counts[0].user_id == user
                    served += 1
            for f in flooding:
                f.result()
        assert set(codes) == {grpc.StatusCode.UNAUTHENTICATED} and sum(codes.values()) >= 200
        assert served >= 10
