"""A tokens file without a single ``[[token]]`` entry, when it is the only
credential configured, would turn auth on with nobody able to pass: the
server refuses it at start (exit 2, naming the file) and a reload keeps the
previous credentials. Beside JWT keys or TLS client scopes it is allowed."""

from __future__ import annotations

import logging
import secrets
import time
from pathlib import Path
from typing import Any

import grpc
import pytest

from harness import clean_env, free_port, run_socialgraph
from server.app import InvalidConfiguration
from server.auth import Authenticator
from server.settings import Settings

from .support import raises
from .test_auth import AUDIENCE, ISSUER, _pem, follow, make_jwt, serving, tokens_toml
from .test_auth_rotation import judge

EMPTY = {
    "empty": "",
    "comments": "# every token was revoked\n",
    "no array": "[other]\nname = 'x'\n",
    "empty array": "token = []\n",
}


@pytest.fixture(params=list(EMPTY), ids=list(EMPTY))
def empty_file(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    path = tmp_path / "tokens.toml"
    path.write_text(EMPTY[request.param])
    return path


@pytest.fixture
def jwt_keys(tmp_path: Path) -> tuple[Any, Path]:
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    path = tmp_path / "keys.pem"
    path.write_bytes(_pem(key.public_key()))
    return key, path


# ------------------------------------------------------------------- start


def test_the_server_refuses_to_start_on_an_empty_tokens_file_alone(tmp_path: Path, empty_file: Path) -> None:
    with pytest.raises(InvalidConfiguration, match=str(empty_file)) as refused, serving(
        tmp_path, auth_tokens_file=str(empty_file)
    ):
        pass
    assert "[[token]]" in str(refused.value)


def test_serve_exits_2_naming_the_empty_tokens_file(tmp_path: Path) -> None:
    path = tmp_path / "revoked-tokens.toml"
    path.write_text("# every token was revoked\n")
    # A valid port and database: a server that did not refuse would serve until the timeout.
    result = run_socialgraph(
        "serve", "--listen", f"127.0.0.1:{free_port()}", "--database-url", f"sqlite:///{tmp_path}/empty.db",
        "--auth-tokens-file", str(path), cwd=tmp_path, env=clean_env(), timeout=20,
    )
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert str(path) in result.stderr and "[[token]]" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr, result.stderr


def test_an_empty_tokens_file_beside_jwt_keys_is_allowed(
    tmp_path: Path, empty_file: Path, jwt_keys: tuple[Any, Path]
) -> None:
    key, keys_path = jwt_keys
    settings = {"auth_jwt_keys": str(keys_path), "auth_jwt_issuer": ISSUER, "auth_jwt_audience": AUDIENCE}
    with serving(tmp_path, auth_tokens_file=str(empty_file), **settings) as (_app, address):
        assert follow(address, make_jwt(key, "ES256")).created
        with raises(grpc.StatusCode.UNAUTHENTICATED, "UNAUTHENTICATED"):
            follow(address, secrets.token_urlsafe(32))


def test_an_empty_tokens_file_beside_tls_client_scopes_is_allowed(empty_file: Path) -> None:
    # Authenticator alone: the TLS listener it would need is not the point here.
    settings = Settings(auth_tokens_file=str(empty_file), tls_client_scopes="spiffe://example.org/feed=graph")
    auth = Authenticator(settings)
    assert judge(auth, secrets.token_urlsafe(32)) == "refused"


# ------------------------------------------------------------------ reload


def test_a_reload_to_an_empty_tokens_file_keeps_the_previous_tokens(
    tmp_path: Path, empty_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    token = secrets.token_urlsafe(32)
    text = empty_file.read_text()
    empty_file.write_text(tokens_toml(("feed", token, ["graph"])))
    auth = Authenticator(Settings(auth_tokens_file=str(empty_file)).validate())
    assert judge(auth, token) == "token:feed"
    empty_file.write_text(text)
    with caplog.at_level(logging.ERROR, logger="server.auth"):
        assert not auth.reload()
    assert str(empty_file) in caplog.text and "previous ones stay in force" in caplog.text
    assert judge(auth, token) == "token:feed"
    # A file with tokens again is taken.
    fresh = secrets.token_urlsafe(32)
    empty_file.write_text(tokens_toml(("rotated", fresh, ["graph"])))
    assert auth.reload()
    assert (judge(auth, token), judge(auth, fresh)) == ("refused", "token:rotated")


def test_a_reload_to_an_empty_tokens_file_beside_jwt_keys_empties_the_tokens(
    tmp_path: Path, jwt_keys: tuple[Any, Path]
) -> None:
    key, keys_path = jwt_keys
    token = secrets.token_urlsafe(32)
    path = tmp_path / "tokens.toml"
    path.write_text(tokens_toml(("feed", token, ["graph"])))
    settings = Settings(auth_tokens_file=str(path), auth_jwt_keys=str(keys_path), auth_jwt_issuer=ISSUER,
                        auth_jwt_audience=AUDIENCE)
    auth = Authenticator(settings.validate())
    assert judge(auth, token) == "token:feed"
    path.write_text("")
    assert auth.reload()
    assert judge(auth, token) == "refused"
    assert judge(auth, make_jwt(key, "ES256")) == "jwt:system:serviceaccount:prod:feed"


# ------------------------------------------------- not an array of tables

NOT_AN_ARRAY = {
    "single table": "[token]\nname = 'feed'\nsha256 = '%s'\nscopes = ['graph']\n" % ("ab" * 32),
    "string": "token = 'feed'\n",
    "array of numbers": "token = [1, 2]\n",
}


@pytest.mark.parametrize("text", list(NOT_AN_ARRAY.values()), ids=list(NOT_AN_ARRAY))
def test_a_token_key_that_is_not_an_array_of_tables_is_an_unusable_file(
    tmp_path: Path, text: str, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "tokens.toml"
    path.write_text(text)
    with pytest.raises(InvalidConfiguration, match=r"\[\[token\]\]") as refused, serving(
        tmp_path, auth_tokens_file=str(path)
    ):
        pass
    assert str(path) in str(refused.value)
    token = secrets.token_urlsafe(32)
    path.write_text(tokens_toml(("feed", token, ["graph"])))
    auth = Authenticator(Settings(auth_tokens_file=str(path)).validate())
    path.write_text(text)
    with caplog.at_level(logging.ERROR, logger="server.auth"):
        assert not auth.reload()
    assert str(path) in caplog.text
    assert judge(auth, token) == "token:feed"


def test_a_tokens_file_that_is_not_utf8_is_an_unusable_file_named_in_the_log(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    token = secrets.token_urlsafe(32)
    path = tmp_path / "tokens.toml"
    path.write_text(tokens_toml(("feed", token, ["graph"])))
    auth = Authenticator(Settings(auth_tokens_file=str(path)).validate())
    path.write_bytes(b"\xff\xfe token")
    with caplog.at_level(logging.ERROR, logger="server.auth"):
        assert not auth.reload()
    assert str(path) in caplog.text
    assert judge(auth, token) == "token:feed"


def test_the_file_watcher_outlives_an_unexpected_reload_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    token, fresh = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    path = tmp_path / "tokens.toml"
    path.write_text(tokens_toml(("feed", token, ["graph"])))
    auth = Authenticator(Settings(auth_tokens_file=str(path)).validate(), poll_interval=0.02).start()
    try:
        load = Authenticator._load
        failures: list[int] = []

        def failing_once(self: Authenticator) -> Any:
            if not failures:
                failures.append(1)
                raise RuntimeError("a bug in loading")
            return load(self)

        monkeypatch.setattr(Authenticator, "_load", failing_once)
        path.write_text(tokens_toml(("rotated", fresh, ["graph"])))
        deadline = time.monotonic() + 5
        while failures == [] and time.monotonic() < deadline:
            time.sleep(0.02)
        assert failures == [1], "the watcher tried the changed file"
        assert judge(auth, token) == "token:feed", "the previous tokens stay"
        # The file changes again: the watcher, still alive, takes it.
        path.write_text(tokens_toml(("rotated-again", fresh, ["graph"])))
        while judge(auth, fresh) != "token:rotated-again" and time.monotonic() < deadline:
            time.sleep(0.02)
        assert judge(auth, fresh) == "token:rotated-again"
    finally:
        auth.stop()
