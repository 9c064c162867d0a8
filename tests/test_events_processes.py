"""Watch through real server processes: two processes writing while a
consumer reads live, resuming after SIGKILL and SIGTERM, events for
exactly the writes that committed when a server is killed under load,
retention pruned in the background, and ``socialgraph events tail``."""

from __future__ import annotations

import json
import signal
import subprocess
import threading
import time
from concurrent import futures

import grpc
import pytest

from server.rules.events import decode_cursor
from socialgraph.v1 import watch_pb2 as wpb

from .support import (
    BACKENDS,
    Client,
    clean_env,
    new_user,
    raises,
    running_server,
    socialgraph_command,
    temporary_database,
)

pytestmark = pytest.mark.e2e

CHECKPOINT = "0.2"


def serve(url: str, *flags: str):
    return running_server(
        "--database-url", url, "--watch-checkpoint", CHECKPOINT, "--rate-limits", "100000/1h", "--threads", "8", *flags
    )


class Consumer:
    """Reads a Watch stream on its own thread until told to stop, then
    until the stream is caught up: a checkpoint after the stop, other than
    the first message (which only names where the stream starts)."""

    def __init__(self, address: str, after: str, **request) -> None:
        self.channel = grpc.insecure_channel(address)
        self.stream = Client(self.channel).watch.Watch(wpb.WatchRequest(after_cursor=after, **request), timeout=120)
        self.events: list = []
        self.last_cursor = after
        self.error: grpc.RpcError | None = None
        self._stop = threading.Event()
        self._first = True
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            for message in self.stream:
                if message.HasField("event"):
                    self.events.append(message.event)
                    self.last_cursor = message.event.cursor
                else:
                    first, self._first = self._first, False
                    self.last_cursor = message.checkpoint.cursor
                    if self._stop.is_set() and not first:
                        break
        except grpc.RpcError as error:
            self.error = error

    def finish(self, timeout: float = 30) -> list:
        self._stop.set()
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "the stream never caught up"
        self.stream.cancel()
        self.channel.close()
        return self.events


def head_cursor(address: str) -> str:
    with grpc.insecure_channel(address) as channel:
        stream = Client(channel).watch.Watch(wpb.WatchRequest(), timeout=10)
        cursor = next(stream).checkpoint.cursor
        stream.cancel()
        return cursor


def drain(address: str, after: str, **request) -> list:
    consumer = Consumer(address, after, **request)
    events = consumer.finish()
    if consumer.error is not None:
        raise consumer.error
    return events


def follows(events) -> list[tuple[str, str]]:
    return [(x.actor_id, x.subject_id) for x in events if x.kind == wpb.EVENT_KIND_FOLLOWED]


@pytest.mark.parametrize("backend", BACKENDS)
def test_two_processes_write_while_a_consumer_reads_live(backend, tmp_path):
    """Every acknowledged write's event arrives exactly once, in commit
    order: the live stream equals the log read again afterwards."""
    with temporary_database(backend, tmp_path) as url, serve(url) as (first, _), serve(url) as (second, _):
        start = head_cursor(first)
        live = Consumer(first, start)
        acknowledged: list[tuple[str, str]] = []
        lock = threading.Lock()

        def write(address: str) -> None:
            with grpc.insecure_channel(address) as channel:
                client = Client(channel)
                for _ in range(40):
                    pair = (new_user(), new_user())
                    client.follow(*pair)
                    with lock:
                        acknowledged.append(pair)

        with futures.ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(write, [first, second] * 4))
        seen = live.finish()
        assert live.error is None, live.error
        again = drain(second, start)
    assert len(acknowledged) == 320
    assert sorted(follows(seen)) == sorted(acknowledged)
    assert [x.event_id for x in seen] == [x.event_id for x in again]
    positions = [decode_cursor(x.cursor) for x in seen]
    assert positions == sorted(set(positions))


@pytest.mark.parametrize("backend", BACKENDS)
def test_resume_after_sigkill_and_sigterm_has_no_gap_and_no_duplicate(backend, tmp_path):
    pairs = [(new_user(), new_user()) for _ in range(30)]
    with temporary_database(backend, tmp_path) as url:
        with serve(url) as (address, process), grpc.insecure_channel(address) as channel:
            client = Client(channel)
            start = head_cursor(address)
            for pair in pairs[:20]:
                client.follow(*pair)
            stream = client.watch.Watch(wpb.WatchRequest(after_cursor=start), timeout=30)
            read = [m.event for m in (next(stream) for _ in range(11)) if m.HasField("event")]
            assert follows(read) == pairs[:10]
            process.kill()
            process.wait(timeout=10)
        with serve(url) as (address, process), grpc.insecure_channel(address) as channel:
            client = Client(channel)
            for pair in pairs[20:25]:
                client.follow(*pair)
            stream = client.watch.Watch(wpb.WatchRequest(after_cursor=read[-1].cursor), timeout=30)
            resumed = []
            for message in stream:
                if message.HasField("event"):
                    resumed.append(message.event)
                if len(resumed) == 15:
                    break
            assert follows(resumed) == pairs[10:25]
            # SIGTERM ends the stream as resumable.
            process.send_signal(signal.SIGTERM)
            with raises(grpc.StatusCode.UNAVAILABLE, "SHUTTING_DOWN"):
                for message in stream:
                    assert not message.HasField("event")
            assert process.wait(timeout=20) == 0
        with serve(url) as (address, _), grpc.insecure_channel(address) as channel:
            client = Client(channel)
            for pair in pairs[25:]:
                client.follow(*pair)
            assert follows(drain(address, resumed[-1].cursor)) == pairs[25:]
            assert follows(drain(address, start)) == pairs


@pytest.mark.parametrize("backend", BACKENDS)
def test_sigkill_under_write_load_leaves_events_for_exactly_the_committed_writes(backend, tmp_path):
    attempted: list[tuple[str, str]] = []
    acknowledged: set[tuple[str, str]] = set()
    with temporary_database(backend, tmp_path) as url:
        with serve(url) as (address, process):
            start = head_cursor(address)
            stop = threading.Event()

            def write() -> None:
                with grpc.insecure_channel(address) as channel:
                    client = Client(channel)
                    while not stop.is_set():
                        pair = (new_user(), new_user())
                        attempted.append(pair)
                        try:
                            client.graph.Follow(
                                _follow_request(*pair), timeout=5
                            )
                        except grpc.RpcError:
                            return
                        acknowledged.add(pair)

            writers = [threading.Thread(target=write) for _ in range(6)]
            for writer in writers:
                writer.start()
            deadline = time.monotonic() + 30
            while len(acknowledged) < 60 and time.monotonic() < deadline:
                time.sleep(0.02)
            process.kill()
            process.wait(timeout=10)
            stop.set()
            for writer in writers:
                writer.join(timeout=20)
        assert len(acknowledged) >= 60
        with serve(url) as (address, _), grpc.insecure_channel(address) as channel:
            client = Client(channel)
            logged = follows(drain(address, start))
            stored = {pair for pair in attempted if client.relationship(*pair).following}
    assert len(logged) == len(set(logged))
    assert set(logged) == stored
    assert acknowledged <= stored


def _follow_request(follower: str, followee: str):
    from socialgraph.v1 import social_graph_pb2 as pb

    return pb.FollowRequest(follower_id=follower, followee_id=followee)


@pytest.mark.parametrize("backend", BACKENDS)
def test_retention_is_pruned_in_the_background(backend, tmp_path):
    with (
        temporary_database(backend, tmp_path) as url,
        serve(url, "--event-retention", "0.5") as (address, _),
        grpc.insecure_channel(address) as channel,
    ):
        client = Client(channel)
        start = head_cursor(address)
        client.follow(new_user(), new_user())
        deadline = time.monotonic() + 10
        while True:
            try:
                drain(address, start)
            except grpc.RpcError as error:
                assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
                break
            assert time.monotonic() < deadline, "the event was never pruned"
            time.sleep(0.1)
        with raises(grpc.StatusCode.FAILED_PRECONDITION, "CURSOR_EXPIRED"):
            next(iter(client.watch.Watch(wpb.WatchRequest(after_cursor=start), timeout=10)))
        # A fresh cursor still works.
        later = head_cursor(address)
        pair = (new_user(), new_user())
        client.follow(*pair)
        assert follows(drain(address, later)) == [pair]


def test_events_tail_prints_events_as_json_lines(tmp_path):
    with serve(f"sqlite:///{tmp_path}/tail.db") as (address, _), grpc.insecure_channel(address) as channel:
        client = Client(channel)
        start = head_cursor(address)
        a, b = new_user(), new_user()
        client.follow(a, b)
        client.block(a, b, "spam")
        tail = subprocess.Popen(
            [*socialgraph_command(), "events", "tail", "--listen", address, "--after", start]
            + ["--kinds", "blocked,UNFOLLOWED"],
            stdout=subprocess.PIPE,
            text=True,
            env=clean_env(),
        )
        try:
            lines = [json.loads(tail.stdout.readline()) for _ in range(2)]
        finally:
            tail.kill()
            tail.wait(timeout=10)
    assert [(x["kind"], x["actor_id"], x["subject_id"]) for x in lines] == [
        ("EVENT_KIND_UNFOLLOWED", a, b),
        ("EVENT_KIND_BLOCKED", a, b),
    ]
    assert lines[0]["cause"] == "CHANGE_CAUSE_BLOCK" and lines[1]["block"]["reason"] == "spam"
    assert decode_cursor(lines[1]["cursor"]) > decode_cursor(lines[0]["cursor"])
    refused = subprocess.run(
        [*socialgraph_command(), "events", "tail", "--kinds", "NOPE"], capture_output=True, text=True, env=clean_env()
    )
    assert refused.returncode == 2 and "NOPE" in refused.stderr
