"""A consumer that stops reading never grows the server: a ``socialgraph
serve`` process with every Watch slot but one held by streams nobody reads,
while writers append large events. Each stalled stream gets no more than
HTTP/2 flow control lets through, the process's RSS stays under the bound
the README states, the one live stream still gets every event as it
commits, and a stalled stream that reads again gets everything it missed,
in order."""

from __future__ import annotations

import threading
import time
import uuid
from concurrent import futures
from pathlib import Path

import grpc
import pytest

from harness import Metrics, rss_bytes
from socialgraph.v1 import watch_pb2 as wpb

from .support import Client, free_port, running_server

pytestmark = pytest.mark.e2e

THREADS = 32  # so 16 Watch slots: --watch-streams' default, half of --threads
STREAMS = THREADS // 2
STALLED = STREAMS - 1
WRITES = 400
# A client that stops reading: it never asks for the next message, and its
# HTTP/2 stream window is fixed (no BDP probing, which would grow it).
STALLED_OPTIONS = [("grpc.http2.bdp_probe", 0), ("grpc.http2.lookahead_bytes", 16 * 1024)]
# What the README promises: at most this much of one stalled stream's
# events is ever handed to the transport ...
PER_STREAM_BYTES = 256 * 1024
# ... and a process with every slot stalled stays under this RSS, and grows
# by less than this while they stall.
RSS_LIMIT_MB = 250
RSS_GROWTH_MB = 24

# The largest event a user upsert makes: 200 four-byte code points and a
# 2,000-character avatar URL.
DISPLAY_NAME = "\U0001f600" * 200
AVATAR_URL = "https://example.org/" + "a" * 2000


def delivered(metrics_port: int) -> int:
    return int(Metrics(metrics_port).value("socialgraph_events_delivered_total"))


def test_streams_nobody_reads_stay_bounded_and_resume_complete(tmp_path: Path) -> None:
    metrics_port = free_port()
    flags = ["--database-url", f"sqlite:///{tmp_path}/slow.db", "--threads", str(THREADS)]
    flags += ["--metrics-listen", f"127.0.0.1:{metrics_port}", "--watch-checkpoint", "0.2", "--log-level", "WARNING"]
    with running_server(*flags) as (address, process):
        channels = [grpc.insecure_channel(address, options=STALLED_OPTIONS) for _ in range(STALLED)]
        live_channel = grpc.insecure_channel(address)
        try:
            stalled = [Client(c).watch.Watch(wpb.WatchRequest(), timeout=120) for c in channels]
            # Each reads its first checkpoint (the stream is open, its
            # position set) and then nothing more.
            start = {next(stream).checkpoint.cursor for stream in stalled}
            live_events: list[wpb.Event] = []
            live = Client(live_channel).watch.Watch(wpb.WatchRequest(), timeout=120)
            next(live)

            def read_live() -> None:
                for message in live:
                    if message.HasField("event"):
                        live_events.append(message.event)
                        if len(live_events) == WRITES:
                            return

            reader = threading.Thread(target=read_live, daemon=True)
            reader.start()
            rss_before = rss_bytes(process.pid) / 2**20

            user_ids = [str(uuid.uuid4()) for _ in range(WRITES)]

            def write(share: list[str]) -> None:
                with grpc.insecure_channel(address) as channel:
                    client = Client(channel)
                    for user_id in share:
                        client.upsert(user_id, display_name=DISPLAY_NAME, avatar_url=AVATAR_URL)

            with futures.ThreadPoolExecutor(4) as pool:
                list(pool.map(write, [user_ids[i::4] for i in range(4)]))
            reader.join(timeout=30)
            # The one stream that reads got every event, while the others stalled.
            assert len(live_events) == WRITES
            assert {e.actor_id for e in live_events} == set(user_ids)
            event_bytes = min(e.ByteSize() for e in live_events)
            assert event_bytes > 2800

            # The stalled streams took what their windows allow, then stopped.
            time.sleep(1)
            stalled_total = delivered(metrics_port) - WRITES
            time.sleep(1)
            assert delivered(metrics_port) - WRITES == stalled_total, "a stalled stream kept producing"
            per_stream_cap = PER_STREAM_BYTES // event_bytes + 1
            assert 0 < stalled_total <= STALLED * per_stream_cap, (stalled_total, per_stream_cap)
            assert 2 * per_stream_cap < WRITES  # unbounded, each would have taken every event
            rss_after = rss_bytes(process.pid) / 2**20
            assert rss_after < RSS_LIMIT_MB, rss_after
            assert rss_after - rss_before < RSS_GROWTH_MB, (rss_before, rss_after)

            # A stalled stream that reads again gets everything, in commit order.
            assert len(start) == 1
            resumed: list[wpb.Event] = []
            for message in stalled[0]:
                if message.HasField("event"):
                    resumed.append(message.event)
                    if len(resumed) == WRITES:
                        break
            assert [e.event_id for e in resumed] == [e.event_id for e in live_events]
        finally:
            for channel in [*channels, live_channel]:
                channel.close()
