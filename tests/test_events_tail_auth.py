"""``socialgraph events tail`` against a server with auth on: it sends the
bearer token of ``--token-file`` / ``SOCIALGRAPH_TOKEN_FILE`` or
``SOCIALGRAPH_TOKEN``, and speaks the server's TLS with the ``--tls-*``
settings."""

from __future__ import annotations

import json
import secrets
import subprocess
import threading
from pathlib import Path
from typing import Any

import grpc
import pytest

from socialgraph.v1 import social_graph_pb2 as pb
from socialgraph.v1 import watch_pb2

from .certs import Authority
from .support import Client, clean_env, new_user, socialgraph_command
from .test_auth import bearer, serving, tokens_toml

EVENTS_TOKEN, GRAPH_ONLY_TOKEN = secrets.token_urlsafe(32), secrets.token_urlsafe(32)

pytestmark = pytest.mark.e2e


@pytest.fixture
def tokens(tmp_path: Path) -> dict[str, str]:
    path = tmp_path / "tokens.toml"
    path.write_text(tokens_toml(("stream", EVENTS_TOKEN, ["events", "graph"]), ("feed", GRAPH_ONLY_TOKEN, ["graph"])))
    return {"auth_tokens_file": str(path)}


def write_events(channel: grpc.Channel) -> tuple[str, tuple[str, str]]:
    """A cursor, then one Follow after it; returns both."""
    client = Client(channel)
    first = next(iter(client.watch.Watch(watch_pb2.WatchRequest(), metadata=bearer(EVENTS_TOKEN), timeout=10)))
    pair = (new_user(), new_user())
    client.graph.Follow(pb.FollowRequest(follower_id=pair[0], followee_id=pair[1]), metadata=bearer(EVENTS_TOKEN))
    return first.checkpoint.cursor, pair


def tail_one(address: str, cursor: str, *args: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    """The first line ``events tail`` prints (it is killed after it)."""
    tail = subprocess.Popen(
        [*socialgraph_command(), "events", "tail", "--listen", address, "--after", cursor, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=clean_env(**(env or {})),
    )
    deadline = threading.Timer(30, tail.kill)  # a tail that prints nothing ends the read
    deadline.start()
    try:
        line = tail.stdout.readline() if tail.stdout else ""
        assert line, tail.stderr.read() if tail.stderr else "no output"
        return dict(json.loads(line))
    finally:
        deadline.cancel()
        tail.kill()
        tail.wait(timeout=10)


def tail_fails(address: str, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*socialgraph_command(), "events", "tail", "--listen", address, *args],
        capture_output=True,
        text=True,
        env=clean_env(**(env or {})),
        timeout=60,
    )


def test_tail_sends_the_token_of_its_file_or_variable(tmp_path: Path, tokens: dict[str, str]) -> None:
    token_file = tmp_path / "events.token"
    token_file.write_text(EVENTS_TOKEN + "\n")
    with serving(tmp_path, **tokens) as (_, address), grpc.insecure_channel(address) as channel:
        cursor, pair = write_events(channel)
        for args, env in (
            (("--token-file", str(token_file)), {}),
            ((), {"SOCIALGRAPH_TOKEN_FILE": str(token_file)}),
            ((), {"SOCIALGRAPH_TOKEN": EVENTS_TOKEN}),
            # The file wins over the variable.
            (("--token-file", str(token_file)), {"SOCIALGRAPH_TOKEN": "not-the-token"}),
        ):
            event = tail_one(address, cursor, *args, env=env)
            assert (event["kind"], event["actor_id"], event["subject_id"]) == ("EVENT_KIND_FOLLOWED", *pair), args

        missing = tail_fails(address)
        assert missing.returncode == 1 and "UNAUTHENTICATED" in missing.stderr, missing.stderr
        wrong = tail_fails(address, env={"SOCIALGRAPH_TOKEN": "not-the-token"})
        assert wrong.returncode == 1 and "UNAUTHENTICATED" in wrong.stderr, wrong.stderr
        unscoped = tail_fails(address, env={"SOCIALGRAPH_TOKEN": GRAPH_ONLY_TOKEN})
        assert unscoped.returncode == 1 and "PERMISSION_DENIED" in unscoped.stderr, unscoped.stderr
        assert GRAPH_ONLY_TOKEN not in unscoped.stderr


def test_an_unusable_token_file_exits_2_and_names_the_setting(tmp_path: Path) -> None:
    empty = tmp_path / "empty.token"
    empty.write_text("\n")
    for path in (empty, tmp_path / "absent.token"):
        result = tail_fails("127.0.0.1:1", "--token-file", str(path))
        assert result.returncode == 2 and "--token-file" in result.stderr and str(path) in result.stderr, result.stderr


def test_tail_speaks_tls_and_sends_the_token(tmp_path: Path, tokens: dict[str, str]) -> None:
    ca = Authority("events tail test CA")
    issued = ca.issue("socialgraph", dns=("localhost",), ips=("127.0.0.1",))
    # The CLI trusts the chain in --tls-cert: the server's certificate, then its CA.
    cert, key = tmp_path / "server.pem", tmp_path / "server-key.pem"
    cert.write_bytes(issued.cert + ca.pem)
    key.write_bytes(issued.key)
    tls = {"tls_cert": str(cert), "tls_key": str(key)}
    with serving(tmp_path, **tls, **tokens) as (_, address):
        credentials = grpc.ssl_channel_credentials(ca.pem)
        with grpc.secure_channel(address, credentials, options=[("grpc.ssl_target_name_override", "localhost")]) as ch:
            cursor, pair = write_events(ch)
        tls_args = ("--tls-cert", str(cert), "--tls-key", str(key))
        event = tail_one(address, cursor, *tls_args, env={"SOCIALGRAPH_TOKEN": EVENTS_TOKEN})
        assert (event["kind"], event["actor_id"], event["subject_id"]) == ("EVENT_KIND_FOLLOWED", *pair)
        plaintext = tail_fails(address, "--after", cursor, env={"SOCIALGRAPH_TOKEN": EVENTS_TOKEN})
        assert plaintext.returncode == 1 and "UNAVAILABLE" in plaintext.stderr, plaintext.stderr
