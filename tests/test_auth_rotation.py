"""JWT key rotation: a reload replaces the keys and the verified-token cache
together, so once it has returned no call is accepted on a removed key, and a
call running alongside it is judged wholly by the old or wholly by the new
credentials. The reload is driven directly; threads meet on events."""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from server.auth import Authenticator, Caller, JwtVerifier, StaticTokens
from server.rules import Unauthenticated
from server.settings import Settings

from .test_auth import AUDIENCE, ISSUER, _pem, make_jwt, tokens_toml

WAIT = 10.0  # seconds a thread may take to reach its next step; never reached when the code is right


class Context:
    """What Authenticator.authenticate reads of a grpc.ServicerContext."""

    def __init__(self, token: str) -> None:
        self._metadata = (("authorization", f"Bearer {token}"),)

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return self._metadata

    def auth_context(self) -> dict[str, list[bytes]]:
        return {}


def judge(authenticator: Authenticator, token: str) -> str:
    """The caller's name, or ``refused``."""
    try:
        return authenticator.authenticate(Context(token)).name  # type: ignore[arg-type]
    except Unauthenticated:
        return "refused"


class Gate:
    """Holds the calls that pass through it until ``open`` is called."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self._open = threading.Event()

    def wrap(self, function: Callable[..., Any]) -> Callable[..., Any]:
        def gated(*args: Any, **kwargs: Any) -> Any:
            result = function(*args, **kwargs)
            self.entered.set()
            assert self._open.wait(WAIT), "the gate was never opened"
            return result

        return gated

    def open(self) -> None:
        self._open.set()


class InThread:
    """``function()`` on its own thread; ``result()`` waits for its value."""

    def __init__(self, function: Callable[[], str]) -> None:
        self._value: list[str] = []
        self._thread = threading.Thread(target=lambda: self._value.append(function()), daemon=True)
        self._thread.start()

    def result(self) -> str:
        self._thread.join(WAIT)
        assert not self._thread.is_alive() and self._value, "the call did not finish"
        return self._value[0]


@pytest.fixture
def keys() -> dict[str, ec.EllipticCurvePrivateKey]:
    return {"old": ec.generate_private_key(ec.SECP256R1()), "new": ec.generate_private_key(ec.SECP256R1())}


def write_keys(path: Path, *private_keys: ec.EllipticCurvePrivateKey) -> None:
    path.write_bytes(b"".join(_pem(key.public_key()) for key in private_keys))


@pytest.fixture
def key_file(tmp_path: Path, keys: dict[str, ec.EllipticCurvePrivateKey]) -> Path:
    path = tmp_path / "keys.pem"
    write_keys(path, keys["old"], keys["new"])
    return path


def authenticator(key_file: Path, **overrides: Any) -> Authenticator:
    settings = Settings(auth_jwt_keys=str(key_file), auth_jwt_issuer=ISSUER, auth_jwt_audience=AUDIENCE, **overrides)
    return Authenticator(settings.validate())


@pytest.fixture
def gate(monkeypatch: pytest.MonkeyPatch) -> Iterator[Gate]:
    gate = Gate()
    yield gate
    gate.open()  # never leave a thread waiting


def test_a_token_verified_during_a_reload_is_not_remembered_past_it(
    key_file: Path, keys: dict[str, ec.EllipticCurvePrivateKey], gate: Gate, monkeypatch: pytest.MonkeyPatch
) -> None:
    auth = authenticator(key_file)
    old_token, new_token = make_jwt(keys["old"], "ES256"), make_jwt(keys["new"], "ES256")
    monkeypatch.setattr(JwtVerifier, "verify", gate.wrap(JwtVerifier.verify))
    # A call verifies its token with the old key and is held before it returns...
    in_flight = InThread(lambda: judge(auth, old_token))
    assert gate.entered.wait(WAIT)
    # ...while the old key is removed and the reload completes.
    write_keys(key_file, keys["new"])
    assert auth.reload()
    gate.open()
    # It started under the old keys, so either answer is the old or the new one's.
    assert in_flight.result() in ("jwt:system:serviceaccount:prod:feed", "refused")
    monkeypatch.undo()
    # Every call after the reload is judged by the new keys alone: the old
    # token was not left in the cache by the call that was in flight.
    assert judge(auth, old_token) == "refused"
    assert judge(auth, old_token) == "refused"
    assert judge(auth, new_token) == "jwt:system:serviceaccount:prod:feed"


def test_a_token_remembered_before_a_reload_is_forgotten_by_it(
    key_file: Path, keys: dict[str, ec.EllipticCurvePrivateKey]
) -> None:
    auth = authenticator(key_file)
    old_token = make_jwt(keys["old"], "ES256")
    assert judge(auth, old_token) == "jwt:system:serviceaccount:prod:feed"  # now cached
    write_keys(key_file, keys["new"])
    assert auth.reload()
    assert judge(auth, old_token) == "refused"


def test_a_call_during_a_reload_sees_the_old_credentials_or_the_new_never_a_mix(
    tmp_path: Path, key_file: Path, keys: dict[str, ec.EllipticCurvePrivateKey], gate: Gate,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Static tokens and JWT keys rotate together; a call that reads the
    credentials while the reload is loading them, and one that reads them as
    the reload installs them, each see one whole set."""
    old_static, new_static = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    tokens_file = tmp_path / "tokens.toml"
    tokens_file.write_text(tokens_toml(("old", old_static, ["graph"])))
    auth = authenticator(key_file, auth_tokens_file=str(tokens_file))
    old_jwt, new_jwt = make_jwt(keys["old"], "ES256"), make_jwt(keys["new"], "ES256")
    old_set = {"old_static": "token:old", "new_static": "refused", "old_jwt": "jwt:system:serviceaccount:prod:feed",
               "new_jwt": "jwt:system:serviceaccount:prod:feed"}
    new_set = {"old_static": "refused", "new_static": "token:new", "old_jwt": "refused",
               "new_jwt": "jwt:system:serviceaccount:prod:feed"}
    tokens = {"old_static": old_static, "new_static": new_static, "old_jwt": old_jwt, "new_jwt": new_jwt}

    def everything() -> dict[str, str]:
        return {name: judge(auth, token) for name, token in tokens.items()}

    assert everything() == old_set
    tokens_file.write_text(tokens_toml(("new", new_static, ["graph"])))
    write_keys(key_file, keys["new"])
    # The reload is held once it has read the new static tokens.
    monkeypatch.setattr(StaticTokens, "load", classmethod(gate.wrap(StaticTokens.load.__func__)))  # type: ignore[attr-defined]
    reloading = threading.Thread(target=auth.reload, daemon=True)
    reloading.start()
    assert gate.entered.wait(WAIT)
    assert everything() == old_set
    gate.open()
    reloading.join(WAIT)
    assert not reloading.is_alive()
    assert everything() == new_set


def test_the_cache_is_bounded_and_answers_like_a_fresh_check(
    key_file: Path, keys: dict[str, ec.EllipticCurvePrivateKey], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("server.auth._VERIFIED_CACHE_SIZE", 4)
    auth = authenticator(key_file)
    checks: list[str] = []
    verify = JwtVerifier.verify

    def counted(self: JwtVerifier, token: str) -> tuple[Caller, float]:
        checks.append(token)
        return verify(self, token)

    monkeypatch.setattr(JwtVerifier, "verify", counted)
    tokens = [make_jwt(keys["old"], "ES256", sub=f"caller-{n}") for n in range(6)]
    assert [judge(auth, token) for token in tokens] == [f"jwt:caller-{n}" for n in range(6)]
    assert judge(auth, tokens[-1]) == "jwt:caller-5"
    assert len(checks) == 6  # the last one came from the cache


def test_a_jwks_whose_keys_are_not_a_list_is_refused_and_the_previous_keys_stay(
    tmp_path: Path, key_file: Path, keys: dict[str, ec.EllipticCurvePrivateKey], caplog: pytest.LogCaptureFixture
) -> None:
    jwks = tmp_path / "jwks.json"
    jwks.write_text('{"keys": 5}')
    with pytest.raises(ValueError, match="not a JWKS document"):
        authenticator(jwks)
    auth = authenticator(key_file)
    key_file.write_text('{"keys": 5}')
    with caplog.at_level("ERROR", logger="server.auth"):
        assert not auth.reload()
    assert str(key_file) in caplog.text
    assert judge(auth, make_jwt(keys["old"], "ES256")) == "jwt:system:serviceaccount:prod:feed"
