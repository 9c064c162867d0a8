"""``--access-log``: one line per RPC; ``--log-format json``: one JSON
object per line."""

from __future__ import annotations

import json
import logging

import grpc

from socialgraph.v1 import social_graph_pb2 as pb

from .support import Client, new_user, raises, running_server
from .test_auth import ADMIN_TOKEN, GRAPH_TOKEN, STANDARD_TOKENS, bearer, serving, stats


def access_lines(caplog) -> list[dict]:
    return [record.rpc for record in caplog.records if record.name == "socialgraph.access"]


def test_each_rpc_gets_one_access_line_with_its_outcome_and_caller(tmp_path, caplog):
    tokens = tmp_path / "tokens.toml"
    tokens.write_text(STANDARD_TOKENS)
    caplog.set_level(logging.INFO, logger="socialgraph.access")
    with serving(tmp_path, access_log=True, auth_tokens_file=str(tokens)) as (_, address):
        with grpc.insecure_channel(address) as channel:
            client = Client(channel)
            client.graph.Follow(pb.FollowRequest(follower_id=new_user(), followee_id=new_user()),
                                metadata=(*bearer(GRAPH_TOKEN), ("x-request-id", "req-42")))
            with raises(grpc.StatusCode.INVALID_ARGUMENT, "INVALID_USER_ID"):
                client.graph.Follow(pb.FollowRequest(follower_id="nope", followee_id=new_user()),
                                    metadata=bearer(GRAPH_TOKEN))
        with raises(grpc.StatusCode.PERMISSION_DENIED, "MISSING_SCOPE"):
            stats(address, GRAPH_TOKEN)
        with raises(grpc.StatusCode.UNAUTHENTICATED, "UNAUTHENTICATED"):
            stats(address)
        assert stats(address, ADMIN_TOKEN).users == 0
    ok, invalid, missing, anonymous, admin = access_lines(caplog)
    follow, get_stats = "/socialgraph.v1.SocialGraphService/Follow", "/socialgraph.v1.AdminService/GetStats"
    fields = (ok["method"], ok["code"], ok["reason"], ok["caller"], ok["request_id"])
    assert fields == (follow, "OK", "", "token:feed", "req-42")
    assert ok["peer"].startswith("ipv4:127.0.0.1:") and ok["duration_ms"] > 0
    assert (invalid["code"], invalid["reason"], invalid["caller"]) == (
        "INVALID_ARGUMENT", "INVALID_USER_ID", "token:feed"
    )
    assert len(invalid["request_id"]) == 32 and invalid["request_id"] != ok["request_id"]
    assert (missing["method"], missing["code"], missing["reason"], missing["caller"]) == (
        get_stats, "PERMISSION_DENIED", "MISSING_SCOPE", "token:feed")
    assert (anonymous["code"], anonymous["reason"], anonymous["caller"]) == ("UNAUTHENTICATED", "UNAUTHENTICATED", "")
    assert (admin["code"], admin["caller"]) == ("OK", "token:backoffice")


def test_without_the_access_log_nothing_is_logged_per_rpc(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="socialgraph.access")
    with serving(tmp_path) as (_, address):
        assert stats(address).users == 0
    assert access_lines(caplog) == []


def test_json_format_writes_one_object_per_line(tmp_path):
    tokens = tmp_path / "tokens.toml"
    tokens.write_text(STANDARD_TOKENS)
    args = ("--database-url", f"sqlite:///{tmp_path}/json.db", "--log-format", "json", "--access-log", "true",
            "--auth-tokens-file", str(tokens), "--grace-period", "1")
    with running_server(*args) as (address, process):
        assert stats(address, ADMIN_TOKEN).users == 0
        with raises(grpc.StatusCode.PERMISSION_DENIED, "MISSING_SCOPE"):
            stats(address, GRAPH_TOKEN)
        process.terminate()
        process.wait(timeout=30)
        output = process.output()
    lines = [json.loads(line) for line in output.splitlines()]
    assert {"time", "level", "logger", "message"} <= set(lines[0])
    rpcs = [line for line in lines if line["logger"] == "socialgraph.access" and "GetStats" in line["method"]]
    assert [(line["code"], line["caller"]) for line in rpcs] == [
        ("OK", "token:backoffice"), ("PERMISSION_DENIED", "token:feed")
    ]
    assert rpcs[1]["reason"] == "MISSING_SCOPE"
    assert GRAPH_TOKEN not in output and ADMIN_TOKEN not in output
