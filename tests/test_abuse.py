"""Attacks on a running server, as a hostile client would make them: pages
that would pass the message size, connections that open more streams than
they may, and floods of expensive calls."""

from __future__ import annotations

import socket
import struct

import grpc
import pytest
from grpc import StatusCode

from socialgraph.v1 import social_graph_pb2 as pb

from .support import Client, new_user, running_server

MESSAGE_LIMIT = 256 * 1024
# The longest display name (200 four-byte code points) and avatar URL.
BIG_NAME = "\U0001f600" * 200
BIG_AVATAR = "https://cdn.example.test/" + "a" * (2048 - len("https://cdn.example.test/"))


@pytest.fixture(scope="module")
def small_server(tmp_path_factory):
    directory = tmp_path_factory.mktemp("abuse")
    args = (
        "--database-url", f"sqlite:///{directory}/a.db",
        "--max-message-bytes", str(MESSAGE_LIMIT),
        "--max-concurrent-streams", "7",
        "--rate-limits", "100000/1h",
    )
    with running_server(*args) as (address, process), grpc.insecure_channel(address) as channel:
        yield address, Client(channel)


def test_pages_of_maximal_users_stop_early_instead_of_passing_the_message_size(small_server):
    """150 followers with the longest names and avatars weigh about 450 kB:
    a page of 1,000 cannot fit in 256 kB. It stops early with a token, and
    the walk still returns every follower exactly once."""
    _, client = small_server
    star, fans = new_user(), [new_user() for _ in range(150)]
    for fan in fans:
        client.upsert(fan, display_name=BIG_NAME, avatar_url=BIG_AVATAR)
        client.follow(fan, star)
    seen, token, pages = [], "", 0
    while True:
        page = client.graph.ListFollowers(pb.ListFollowersRequest(user_id=star, page_size=1000, page_token=token))
        assert page.ByteSize() < MESSAGE_LIMIT
        seen.extend(u.user_id for u in page.users)
        pages += 1
        token = page.next_page_token
        if not token:
            break
    assert pages > 1
    assert seen == fans[::-1]
    # Mutual connections are not paged: the list is cut to the budget, the count stays whole.
    other = new_user()
    for fan in fans[:100]:
        client.connect(star, fan)
        client.connect(other, fan)
    mutual = client.graph.GetMutualConnections(
        pb.GetMutualConnectionsRequest(user_id=star, other_user_id=other, limit=100)
    )
    assert mutual.count == 100 and 0 < len(mutual.users) < 100


def _server_settings(address: str) -> dict[int, int]:
    """The SETTINGS the server sends a fresh HTTP/2 connection."""
    host, port = address.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + struct.pack(">I", 0)[1:] + b"\x04\x00" + b"\x00\x00\x00\x00")
        buffer = b""
        while True:
            while len(buffer) < 9:
                chunk = sock.recv(4096)
                assert chunk, "the server closed the connection"
                buffer += chunk
            length = int.from_bytes(buffer[:3], "big")
            kind, flags = buffer[3], buffer[4]
            while len(buffer) < 9 + length:
                buffer += sock.recv(4096)
            payload, buffer = buffer[9 : 9 + length], buffer[9 + length :]
            if kind == 0x4 and not flags & 0x1:  # SETTINGS, not an ACK
                return {
                    int.from_bytes(payload[i : i + 2], "big"): int.from_bytes(payload[i + 2 : i + 6], "big")
                    for i in range(0, len(payload), 6)
                }


def test_the_server_advertises_its_max_concurrent_streams(small_server):
    address, _ = small_server
    settings = _server_settings(address)
    assert settings.get(0x3) == 7  # SETTINGS_MAX_CONCURRENT_STREAMS
