"""The event log and WatchService on SQLite and PostgreSQL: every write
emits its events exactly once in its own transaction, nothing for repeats
and failures, and Watch delivers them in commit order from a cursor, with
filters, checkpoints and cursor errors."""

from __future__ import annotations

import base64
import contextlib
import threading
import time
from concurrent import futures

import grpc
import pytest

from ratelimit import InProcessLimiter, parse_windows
from server.app import add_services
from server.rules import EventLog, Graph, Policy
from server.rules.events import decode_cursor, encode_cursor
from server.rules.graph import now_us
from server.servicers import WatchServicer
from socialgraph.v1 import watch_pb2 as wpb
from storage.feed import EventFeed
from storage.types import Cause, Change, EventKind, Role, User

from .support import Client, raises

CHECKPOINT = 0.2
STREAMS = 4

K = wpb.EventKind
REQUEST, AUTO_FOLLOW, BLOCK, USER_DELETED, PROMOTION = (
    wpb.CHANGE_CAUSE_REQUEST,
    wpb.CHANGE_CAUSE_AUTO_FOLLOW,
    wpb.CHANGE_CAUSE_BLOCK,
    wpb.CHANGE_CAUSE_USER_DELETED,
    wpb.CHANGE_CAUSE_PROMOTION,
)


@pytest.fixture(scope="module")
def client(graph):
    """A server whose Watch sends checkpoints every CHECKPOINT seconds,
    serves at most STREAMS streams, and keeps only the last few events in
    memory, so streams read both the log and the feed's window."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=16))
    events = EventLog(graph.storage, now_us)
    feed = EventFeed(graph.storage, events.sequence, keep=8)
    watch = WatchServicer(events, feed, checkpoint=CHECKPOINT, max_streams=STREAMS)
    add_services(server, graph, watch)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    yield Client(channel)
    feed.close()
    channel.close()
    server.stop(None)


def head_cursor(client) -> str:
    """The cursor of "now": the first checkpoint of a stream from now."""
    stream = client.watch.Watch(wpb.WatchRequest(), timeout=10)
    first = next(stream)
    stream.cancel()
    assert first.HasField("checkpoint"), first
    return first.checkpoint.cursor


def drain(client, cursor: str, users=(), kinds=()) -> list:
    """Every event after ``cursor`` (matching the filters), read until the
    stream is caught up and idle (its second checkpoint)."""
    stream = client.watch.Watch(wpb.WatchRequest(after_cursor=cursor, user_ids=users, kinds=kinds), timeout=30)
    events, checkpoints = [], 0
    for message in stream:
        if message.HasField("event"):
            events.append(message.event)
        else:
            checkpoints += 1
            if checkpoints == 2:
                break
    stream.cancel()
    return events


def brief(event) -> tuple:
    """(kind, actor, subject, cause) with the kind's fields that a test can predict."""
    kind = K.Name(event.kind).removeprefix("EVENT_KIND_")
    return (kind, event.actor_id, event.subject_id, event.cause)


# ------------------------------------------------------------- every kind


def test_every_kind_is_emitted_once_with_its_fields(client, user):
    a, b, c, d, e, f, m = (user() for _ in range(7))
    start = head_cursor(client)
    t0 = time.time()

    client.follow(a, b)
    client.follow(a, b)  # repeat
    client.unfollow(a, b)
    client.unfollow(a, b)  # repeat
    client.follow(c, a)
    client.graph.RemoveFollower(_pb().RemoveFollowerRequest(user_id=a, follower_id=c))
    client.graph.RemoveFollower(_pb().RemoveFollowerRequest(user_id=a, follower_id=c))  # repeat
    first = client.send(a, b, "hi").request.request_id
    client.send(a, b, "again")  # repeat
    client.graph.CancelConnectionRequest(_pb().CancelConnectionRequestRequest(requester_id=a, recipient_id=b))
    client.graph.CancelConnectionRequest(_pb().CancelConnectionRequestRequest(requester_id=a, recipient_id=b))
    second = client.send(a, b).request.request_id
    client.graph.DeclineConnectionRequest(_pb().DeclineConnectionRequestRequest(recipient_id=b, requester_id=a))
    client.graph.DeclineConnectionRequest(_pb().DeclineConnectionRequestRequest(recipient_id=b, requester_id=a))
    third = client.send(a, b).request.request_id
    client.accept(b, a)
    client.accept(b, a)  # repeat
    client.graph.RemoveConnection(_pb().RemoveConnectionRequest(user_id=a, other_user_id=b))
    client.graph.RemoveConnection(_pb().RemoveConnectionRequest(user_id=a, other_user_id=b))
    crossing = client.send(c, d).request.request_id
    client.send(d, c)  # crosses
    block = client.block(c, d, "spam").block
    client.block(c, d, "again")  # repeat
    client.unblock(c, d)
    client.unblock(c, d)  # repeat
    pending = client.send(e, f).request.request_id
    client.block(f, e)
    client.upsert(m, role=1, display_name="Mo")
    client.upsert(m, role=1, display_name="Mo")  # repeat
    client.block(d, m)
    client.upsert(m, role=2, display_name="Mo")
    request = _pb().ReportUserRequest(reporter_id=a, reported_id=b, reason=1, details="x")
    report = client.graph.ReportUser(request).report
    _resolve(client, report.report_id, m)
    _resolve(client, report.report_id, m)  # repeat
    client.send(a, c)
    client.admin.DeleteUser(_apb().DeleteUserRequest(user_id=a))
    client.admin.DeleteUser(_apb().DeleteUserRequest(user_id=a))  # repeat

    events = drain(client, start, users=(a, b, c, d, e, f, m))
    assert [brief(x) for x in events] == [
        ("FOLLOWED", a, b, REQUEST),
        ("UNFOLLOWED", a, b, REQUEST),
        ("FOLLOWED", c, a, REQUEST),
        ("FOLLOWER_REMOVED", a, c, REQUEST),
        ("CONNECTION_REQUESTED", a, b, REQUEST),
        ("FOLLOWED", a, b, AUTO_FOLLOW),
        ("CONNECTION_REQUEST_CANCELLED", a, b, REQUEST),
        ("CONNECTION_REQUESTED", a, b, REQUEST),
        ("CONNECTION_REQUEST_DECLINED", b, a, REQUEST),
        ("CONNECTION_REQUESTED", a, b, REQUEST),
        ("CONNECTED", b, a, REQUEST),
        ("FOLLOWED", b, a, AUTO_FOLLOW),
        ("CONNECTION_REMOVED", a, b, REQUEST),
        ("CONNECTION_REQUESTED", c, d, REQUEST),
        ("FOLLOWED", c, d, AUTO_FOLLOW),
        ("CONNECTED", d, c, REQUEST),
        ("FOLLOWED", d, c, AUTO_FOLLOW),
        ("UNFOLLOWED", c, d, BLOCK),
        ("UNFOLLOWED", d, c, BLOCK),
        ("CONNECTION_REMOVED", c, d, BLOCK),
        ("BLOCKED", c, d, REQUEST),
        ("UNBLOCKED", c, d, REQUEST),
        ("CONNECTION_REQUESTED", e, f, REQUEST),
        ("FOLLOWED", e, f, AUTO_FOLLOW),
        ("UNFOLLOWED", e, f, BLOCK),
        ("CONNECTION_REQUEST_CANCELLED", e, f, BLOCK),
        ("BLOCKED", f, e, REQUEST),
        ("USER_UPSERTED", m, m, REQUEST),
        ("BLOCKED", d, m, REQUEST),
        ("UNBLOCKED", d, m, PROMOTION),
        ("USER_UPSERTED", m, m, REQUEST),
        ("REPORT_FILED", a, b, REQUEST),
        ("REPORT_RESOLVED", m, b, REQUEST),
        ("CONNECTION_REQUESTED", a, c, REQUEST),
        ("FOLLOWED", a, c, AUTO_FOLLOW),
        # DeleteUser(a): a follows b and c, b follows a; the request to c.
        *sorted(
            [
                ("UNFOLLOWED", a, b, USER_DELETED),
                ("UNFOLLOWED", a, c, USER_DELETED),
                ("UNFOLLOWED", b, a, USER_DELETED),
            ],
            key=lambda x: (x[1], x[2]),
        ),
        ("CONNECTION_REQUEST_CANCELLED", a, c, USER_DELETED),
        ("USER_DELETED", a, a, REQUEST),
    ]
    by_kind = {}
    for x in events:
        by_kind.setdefault(x.kind, []).append(x)
    requested = by_kind[K.EVENT_KIND_CONNECTION_REQUESTED]
    assert [(x.request.request_id, x.request.message) for x in requested[:3]] == [
        (first, "hi"), (second, ""), (third, "")
    ]
    assert [x.request.request_id for x in by_kind[K.EVENT_KIND_CONNECTION_REQUEST_CANCELLED][:2]] == [first, pending]
    assert by_kind[K.EVENT_KIND_CONNECTION_REQUEST_DECLINED][0].request.request_id == second
    assert [(x.connected.via, x.connected.request_id) for x in by_kind[K.EVENT_KIND_CONNECTED]] == [
        (wpb.CONNECTED_VIA_ACCEPTED, third),
        (wpb.CONNECTED_VIA_CROSSING, crossing),
    ]
    assert (by_kind[K.EVENT_KIND_BLOCKED][0].block.block_id, by_kind[K.EVENT_KIND_BLOCKED][0].block.reason) == (
        block.block_id,
        "spam",
    )
    upserts = by_kind[K.EVENT_KIND_USER_UPSERTED]
    assert [(x.user.previous_role, x.user.role, x.user.display_name) for x in upserts] == [(0, 1, "Mo"), (1, 2, "Mo")]
    filed, resolved = by_kind[K.EVENT_KIND_REPORT_FILED][0], by_kind[K.EVENT_KIND_REPORT_RESOLVED][0]
    assert (filed.report.report_id, filed.report.reason, filed.report.details, filed.report.status) == (
        report.report_id, 1, "x", 1
    )
    assert (resolved.report.report_id, resolved.report.status, resolved.report.note) == (report.report_id, 3, "done")
    # Ids are unique, cursors follow the order, times are the writes' own.
    assert len({x.event_id for x in events}) == len(events)
    positions = [decode_cursor(x.cursor) for x in events]
    assert positions == sorted(set(positions))
    assert all(t0 - 1 <= x.occurred_at.seconds <= time.time() + 1 for x in events)
    assert all(x.consistency_token for x in events)


def _pb():
    from socialgraph.v1 import social_graph_pb2

    return social_graph_pb2


def _apb():
    from socialgraph.v1 import admin_pb2

    return admin_pb2


def _resolve(client, report_id: str, moderator: str):
    apb = _apb()
    client.admin.ResolveReport(
        apb.ResolveReportRequest(
            report_id=report_id, moderator_id=moderator, resolution=apb.REPORT_RESOLUTION_ACTIONED, note="done"
        )
    )


def test_refused_and_rolled_back_writes_emit_nothing(client, storage, user):
    a, b, m = user(), user(), user()
    client.upsert(m, role=3)
    start = head_cursor(client)
    client.block(a, b)
    with raises(grpc.StatusCode.PERMISSION_DENIED, "BLOCKED"):
        client.follow(b, a)
    with raises(grpc.StatusCode.PERMISSION_DENIED, "CANNOT_BLOCK_STAFF"):
        client.block(a, m)

    def emit_then_fail(tx):
        tx.lock_users((a, b))
        tx.emit(Change(EventKind.FOLLOWED, b, a, now_us(), {"cause": 1}))
        tx.insert_follow(b, a, now_us())
        raise RuntimeError("rolled back")

    with pytest.raises(RuntimeError):
        storage.read_write(emit_then_fail)
    assert [brief(x) for x in drain(client, start, users=(a, b, m))] == [("BLOCKED", a, b, REQUEST)]


def test_an_event_carries_a_consistency_token_that_covers_its_write(client, storage, user):
    """A read with the event's token sees the change: the token names the
    write's own commit position (SQLite) or one read after it (PostgreSQL)."""
    from socialgraph.v1 import common_pb2
    from socialgraph.v1 import social_graph_pb2 as pb

    a, b = user(), user()
    start = head_cursor(client)
    written = client.follow(a, b)
    [event] = drain(client, start, users=(a, b))
    assert event.consistency_token
    position, write = storage.token_position(event.consistency_token), storage.token_position(written.consistency_token)
    assert position == write if storage.dialect == "sqlite" else position >= write
    fresh = common_pb2.Consistency(at_least_as_fresh=event.consistency_token)
    response = client.graph.GetRelationship(pb.GetRelationshipRequest(user_id=a, other_user_id=b, consistency=fresh))
    assert response.relationship.following


def logged(storage, start: int, users) -> list:
    """The committed events about ``users`` after position ``start``."""
    log = EventLog(storage, now_us)
    log.sequence()
    events, position = [], start
    while True:
        found = log.read(position, (), users)
        events.extend(found.events)
        if found.through >= found.head:
            return events
        position = found.through


def test_a_batched_deletion_emits_every_edge_it_removes_then_user_deleted(storage, user):
    """DeleteUser runs in transactions of at most ``edge_batch`` edges per
    kind: each appends the events of the edges it removed, the last one
    USER_DELETED."""
    graph = Graph(storage, InProcessLimiter(parse_windows("1000/1h")), Policy(edge_batch=2, auto_follow=False))
    big, fans, idols, blockers, blocked = user(), [user() for _ in range(5)], [user() for _ in range(3)], [
        user() for _ in range(3)
    ], [user() for _ in range(3)]
    requested = [user() for _ in range(3)]
    for fan in fans:
        graph.follow(fan, big)
    for idol in idols:
        graph.follow(big, idol)
    for blocker in blockers:
        graph.block(blocker, big, "")
    for other in blocked:
        graph.block(big, other, "")
    for other in requested:
        graph.send_connection_request(other, big, "")
    start = EventLog(storage, now_us).start("")
    graph.delete_user(big)
    events = logged(storage, start, [big])
    assert (events[-1].kind, events[-1].actor_id) == (EventKind.USER_DELETED, big)
    removals = events[:-1]
    assert {x.payload["cause"] for x in removals} == {Cause.USER_DELETED}
    edges = [(EventKind(x.kind), x.actor_id, x.subject_id) for x in removals]
    assert sorted(edges) == sorted(
        [(EventKind.UNFOLLOWED, fan, big) for fan in fans]
        + [(EventKind.UNFOLLOWED, big, idol) for idol in idols]
        + [(EventKind.UNBLOCKED, blocker, big) for blocker in blockers]
        + [(EventKind.UNBLOCKED, big, other) for other in blocked]
        + [(EventKind.CONNECTION_REQUEST_CANCELLED, other, big) for other in requested]
    )


def test_a_batched_promotion_emits_one_unblocked_per_lifted_block(storage, user):
    """The role is committed with the first batch of lifted blocks; the rest
    go in batches of their own, each with its events."""
    graph = Graph(storage, InProcessLimiter(parse_windows("1000/1h")), Policy(edge_batch=2))
    target, blockers = user(), [user() for _ in range(5)]
    graph.upsert_user(User(target, Role.MEMBER, "", "", 0))
    for blocker in blockers:
        graph.block(blocker, target, "")
    start = EventLog(storage, now_us).start("")
    graph.upsert_user(User(target, Role.MODERATOR, "", "", 0))
    events = [(EventKind(x.kind), x.actor_id, x.payload["cause"]) for x in logged(storage, start, [target])]
    lifted = [(EventKind.UNBLOCKED, b, Cause.PROMOTION) for b in sorted(blockers)]
    assert events == [*lifted[:2], (EventKind.USER_UPSERTED, target, Cause.REQUEST), *lifted[2:]]


# ------------------------------------------------------------------ stream


def test_watch_from_now_sees_only_later_events_and_resumes_without_gap(client, user):
    a, b, c = user(), user(), user()
    client.follow(a, b)  # before the stream: not seen
    stream = client.watch.Watch(wpb.WatchRequest(user_ids=[a, b, c]), timeout=30)
    start = next(stream).checkpoint.cursor
    client.follow(a, c)
    client.follow(b, c)
    seen = [next(stream).event for _ in range(2)]
    stream.cancel()
    assert [brief(x) for x in seen] == [("FOLLOWED", a, c, REQUEST), ("FOLLOWED", b, c, REQUEST)]
    client.follow(c, a)
    # Resuming after the first event gives the second and the later one.
    assert [brief(x) for x in drain(client, seen[0].cursor, users=(a, b, c))] == [
        ("FOLLOWED", b, c, REQUEST),
        ("FOLLOWED", c, a, REQUEST),
    ]
    assert [brief(x) for x in drain(client, start, users=(a, b, c))][0] == ("FOLLOWED", a, c, REQUEST)


def test_filters_by_kind_and_by_actor_or_subject(client, user):
    a, b, c = user(), user(), user()
    start = head_cursor(client)
    client.follow(a, b)
    client.follow(c, a)
    client.block(b, c)
    assert [brief(x) for x in drain(client, start, users=(a,))] == [
        ("FOLLOWED", a, b, REQUEST),
        ("FOLLOWED", c, a, REQUEST),
    ]
    assert [brief(x) for x in drain(client, start, users=(c,), kinds=(K.EVENT_KIND_BLOCKED,))] == [
        ("BLOCKED", b, c, REQUEST)
    ]
    kinds = (K.EVENT_KIND_BLOCKED, K.EVENT_KIND_FOLLOWED)
    assert [brief(x) for x in drain(client, start, users=(a, b, c), kinds=kinds)] == [
        ("FOLLOWED", a, b, REQUEST),
        ("FOLLOWED", c, a, REQUEST),
        ("BLOCKED", b, c, REQUEST),
    ]


def test_idle_stream_sends_checkpoints_that_advance_past_filtered_events(client, user):
    a, b, quiet = user(), user(), user()
    stream = client.watch.Watch(wpb.WatchRequest(user_ids=[quiet]), timeout=30)
    first = next(stream)
    client.follow(a, b)  # not for this stream
    began = time.monotonic()
    checkpoints = [next(stream), next(stream)]
    elapsed = time.monotonic() - began
    stream.cancel()
    assert all(m.HasField("checkpoint") for m in [first, *checkpoints])
    assert elapsed < 10 * CHECKPOINT
    # The position moved past the follow, so resuming from it sees nothing of it.
    assert decode_cursor(checkpoints[-1].checkpoint.cursor) > decode_cursor(first.checkpoint.cursor)
    assert drain(client, checkpoints[-1].checkpoint.cursor, users=(a, b)) == []


def test_concurrent_writers_then_one_stream_sees_every_event_once_in_order(client, user):
    start = head_cursor(client)
    pairs = [(user(), user()) for _ in range(40)]
    acknowledged: list[tuple[str, str]] = []
    lock = threading.Lock()

    def write(pair):
        follower, followee = pair
        for _ in range(3):
            client.follow(follower, followee)
            client.unfollow(follower, followee)
        with lock:
            acknowledged.append(pair)

    with futures.ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(write, pairs))
    users = sorted({u for pair in pairs for u in pair})[:100]
    events = [x for x in drain(client, start) if x.actor_id in users or x.subject_id in users]
    assert len(acknowledged) == len(pairs)
    assert len(events) == 6 * len(pairs)
    assert len({x.event_id for x in events}) == len(events)
    positions = [decode_cursor(x.cursor) for x in events]
    assert positions == sorted(positions)
    for follower, followee in pairs:
        mine = [K.Name(x.kind) for x in events if (x.actor_id, x.subject_id) == (follower, followee)]
        assert mine == ["EVENT_KIND_FOLLOWED", "EVENT_KIND_UNFOLLOWED"] * 3


# ------------------------------------------------------------------ errors


@pytest.mark.parametrize(
    "cursor",
    [
        "not a cursor",
        "AAAA",
        base64.urlsafe_b64encode(b"e1.5.00000000").decode().rstrip("="),
        encode_cursor(5)[:-2],
        "é",
    ],
)
def test_a_malformed_cursor_is_invalid_cursor(client, cursor):
    with raises(grpc.StatusCode.INVALID_ARGUMENT, "INVALID_CURSOR") as raised:
        next(client.watch.Watch(wpb.WatchRequest(after_cursor=cursor), timeout=10))
    assert raised.info.metadata["field"] == "after_cursor"


def test_a_cursor_past_the_head_is_invalid_cursor(client):
    ahead = decode_cursor(head_cursor(client)) + 1_000_000
    with raises(grpc.StatusCode.INVALID_ARGUMENT, "INVALID_CURSOR"):
        next(client.watch.Watch(wpb.WatchRequest(after_cursor=encode_cursor(ahead)), timeout=10))


def test_bad_filters_are_invalid_argument(client):
    with raises(grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ENUM") as raised:
        next(client.watch.Watch(wpb.WatchRequest(kinds=[0]), timeout=10))
    assert raised.info.metadata["field"] == "kinds[0]"
    with raises(grpc.StatusCode.INVALID_ARGUMENT, "INVALID_USER_ID"):
        next(client.watch.Watch(wpb.WatchRequest(user_ids=["nope"]), timeout=10))
    with raises(grpc.StatusCode.INVALID_ARGUMENT, "TOO_MANY_IDS"):
        next(client.watch.Watch(wpb.WatchRequest(user_ids=[str(i) for i in range(101)]), timeout=10))


def test_streams_beyond_the_cap_are_refused_until_one_ends(client):
    from server.servicers.watch import STREAMS as OPEN_STREAMS

    open_before = OPEN_STREAMS._value.get()
    with contextlib.ExitStack() as streams:
        opened = []
        for _ in range(STREAMS):
            stream = client.watch.Watch(wpb.WatchRequest(), timeout=30)
            streams.callback(stream.cancel)
            next(stream)
            opened.append(stream)
        with raises(grpc.StatusCode.RESOURCE_EXHAUSTED, "TOO_MANY_STREAMS"):
            next(client.watch.Watch(wpb.WatchRequest(), timeout=10))
        opened[0].cancel()
        deadline = time.monotonic() + 5
        while True:
            try:
                stream = client.watch.Watch(wpb.WatchRequest(), timeout=10)
                assert next(stream).HasField("checkpoint")
                stream.cancel()
                break
            except grpc.RpcError as error:
                assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
                assert time.monotonic() < deadline, "the cancelled stream's slot was never freed"
                time.sleep(0.05)
    # The server frees cancelled streams' slots a moment later; the tests
    # after this one share the server, so leave it with every slot free.
    deadline = time.monotonic() + 10
    while OPEN_STREAMS._value.get() != open_before:
        assert time.monotonic() < deadline, "cancelled streams' slots were never freed"
        time.sleep(0.05)


# --------------------------------------------------------------- retention


def test_retention_prunes_oldest_first_and_expires_older_cursors(client, storage, user):
    a, b = user(), user()
    before = head_cursor(client)
    client.follow(a, b)
    after_follow = head_cursor(client)
    time.sleep(0.01)
    log = EventLog(storage, now_us)
    while log.prune(retention_us=0):  # everything is older than no retention
        pass
    assert storage.read_only(lambda tx: tx.events_after(0, (), (), 10, 10_000_000)).events == []
    with raises(grpc.StatusCode.FAILED_PRECONDITION, "CURSOR_EXPIRED"):
        next(client.watch.Watch(wpb.WatchRequest(after_cursor=before), timeout=10))
    # The newest pruned position is still a valid place to resume from.
    client.follow(b, a)
    assert [brief(x) for x in drain(client, after_follow, users=(a, b))] == [("FOLLOWED", b, a, REQUEST)]
    assert decode_cursor(head_cursor(client)) >= decode_cursor(after_follow)


def test_pruning_keeps_events_younger_than_the_retention(storage, user):
    """Oldest first: the log is cut at the first event younger than the
    retention, so what is left is always a suffix of it."""
    a, b = user(), user()
    clock = [now_us() + 1000 * 1_000_000]
    log = EventLog(storage, lambda: clock[0])
    storage.read_write(lambda tx: tx.emit(Change(EventKind.FOLLOWED, a, b, clock[0] - 5_000_000, {"cause": 1})))
    storage.read_write(lambda tx: tx.emit(Change(EventKind.FOLLOWED, b, a, clock[0] - 1_000_000, {"cause": 1})))
    log.sequence()
    while log.prune(retention_us=3_000_000):
        pass
    left = storage.read_only(lambda tx: tx.events_after(0, (), (a,), 10, 10_000_000)).events
    assert [(x.actor_id, x.subject_id) for x in left] == [(b, a)]


def test_memory_is_bounded_per_process_and_per_read(storage, user):
    """The feed keeps at most ``keep`` events; a stream further behind reads
    the log at most READ_LIMIT events at a time."""
    from server.rules.events import READ_LIMIT

    log = EventLog(storage, now_us)
    feed = EventFeed(storage, log.sequence, keep=8)
    try:
        start = log.start("")
        feed.start()
        a = user()
        for _ in range(READ_LIMIT // 2 + 1):
            b = user()
            storage.read_write(lambda tx, b=b: tx.emit(Change(EventKind.FOLLOWED, a, b, now_us(), {"cause": 1})))
            storage.read_write(lambda tx, b=b: tx.emit(Change(EventKind.UNFOLLOWED, a, b, now_us(), {"cause": 1})))
        log.sequence()
        head = storage.read_only(lambda tx: tx.event_head())
        deadline = time.monotonic() + 10
        while feed.recent(head, (), (), READ_LIMIT) is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(feed._recent) == 8
        assert feed.recent(start, (), (), READ_LIMIT) is None  # behind the window: read the log
        window = feed.recent(head - 5, (), (), READ_LIMIT)
        assert [e.seq for e in window.events] == list(range(head - 4, head + 1))
        first = log.read(start, (), (a,))
        assert len(first.events) == READ_LIMIT and first.through == first.events[-1].seq < head
        second = log.read(first.through, (), (a,))
        assert len(second.events) == 2 and second.through == head
    finally:
        feed.close()


def test_streams_and_deliveries_are_counted(client, user):
    from server.servicers.watch import DELIVERED, STREAMS

    a, b = user(), user()
    start = head_cursor(client)
    client.follow(a, b)
    open_before, sent_before = STREAMS._value.get(), DELIVERED._value.get()
    stream = client.watch.Watch(wpb.WatchRequest(after_cursor=start, user_ids=[a]), timeout=10)
    next(stream)
    assert next(stream).event.kind == K.EVENT_KIND_FOLLOWED
    assert STREAMS._value.get() == open_before + 1
    assert DELIVERED._value.get() >= sent_before + 1
    stream.cancel()
    deadline = time.monotonic() + 5
    while STREAMS._value.get() != open_before:
        assert time.monotonic() < deadline, "the cancelled stream is still counted"
        time.sleep(0.02)
