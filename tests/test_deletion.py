"""Big accounts (issue 11 point 3): DeleteUser tombstones the user at once
and a leased background job removes their edges in bounded batches,
resuming after a crash; promotion lifts the blocks against a user the same
way. Counters and events end exact.

The big tests seed 300k followers (150k blockers) with bulk SQL on
PostgreSQL, each in a database of its own (a job left by one would be
claimed first by the next); the tombstone's behaviour runs on every
backend. The timeouts leave room for a heavily loaded machine: at load
average 25 on 2 cores the jobs removed about 700 edges a second."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from typing import Any, cast

import grpc
import pytest
from sqlalchemy import text

from cache import cached_readers
from harness.seed import seed_blockers, seed_followers
from ratelimit import InProcessLimiter, Limiter, parse_windows
from server.rules import Graph, GraphError, NotFound, Policy
from server.rules.events import EventLog
from socialgraph.v1 import admin_pb2 as apb
from socialgraph.v1 import admin_pb2_grpc
from storage import SqlStorage, open_storage
from storage.deletion import JobKind
from storage.migrate import upgrade
from storage.types import Cause, EventKind, Role, Storage, User

from .support import BACKENDS, clean_env, new_user, running_server, temporary_database

FOLLOWERS = 300_000
BLOCKERS = 150_000


@pytest.fixture(scope="module", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def database_url(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with temporary_database(backend, tmp_path_factory.mktemp(backend)) as url:
        yield url


@pytest.fixture(scope="module")
def storage(database_url: str) -> Iterator[SqlStorage]:
    storage = open_storage(database_url, pool_size=8)
    upgrade(storage)
    yield storage
    storage.close()


def make_graph(storage: SqlStorage, **policy: Any) -> Graph:
    """As the server wires it (in-process caches), a request running its
    own job for ``inline_seconds`` (default: one batch)."""
    policy.setdefault("inline_seconds", 0.0)
    limiter = cast(Limiter, InProcessLimiter(parse_windows("100000/1h")))
    return Graph(cast(Storage, storage), limiter, Policy(connection_limit=100, **policy), **cached_readers(storage))


def finish_jobs(graph: Graph) -> int:
    """Runs every open job to the end, as the background runner does; returns how many."""
    n = 0
    while graph.jobs.run_next():
        n += 1
    return n


def scalar(storage: SqlStorage, sql: str, **params: object) -> int:
    with storage.engine.connect() as conn:
        return int(conn.execute(text(sql), params).scalar_one())


def edges_of(storage: SqlStorage, user_id: str) -> int:
    return scalar(
        storage,
        "SELECT (SELECT count(*) FROM follows WHERE follower_id = :u OR followee_id = :u)"
        " + (SELECT count(*) FROM connections WHERE user_id = :u OR other_id = :u)"
        " + (SELECT count(*) FROM connection_requests WHERE requester_id = :u OR recipient_id = :u)"
        " + (SELECT count(*) FROM blocks WHERE blocker_id = :u OR blocked_id = :u)",
        u=user_id,
    )


def sequence(storage: SqlStorage) -> None:
    """Gives every committed event its position, as the server's sequencer does."""
    EventLog(cast(Storage, storage), lambda: time.time_ns() // 1000).sequence()


def events_about(storage: SqlStorage, user_id: str) -> list[tuple[EventKind, str, str, int]]:
    """(kind, actor, subject, cause) of every committed event naming ``user_id``, in log order."""
    sequence(storage)
    with storage.engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT kind, actor_id, subject_id, payload FROM events"
                " WHERE actor_id = :u OR subject_id = :u ORDER BY seq"
            ),
            {"u": user_id},
        ).all()
    return [(EventKind(r.kind), r.actor_id, r.subject_id, json.loads(r.payload)["cause"]) for r in rows]


# ------------------------------------------------------------ the tombstone


def test_a_deleted_user_disappears_at_once_while_the_job_runs(storage: SqlStorage) -> None:
    graph = make_graph(storage, edge_batch=2)
    d, fan, idol, friend, mate, asker, blocker, viewer = (new_user() for _ in range(8))
    graph.upsert_user(User(d, Role.MEMBER, "Doomed", "", 0))
    for other in (fan, friend, viewer):
        graph.follow(other, d)
    graph.follow(d, idol)
    graph.follow(fan, idol)
    for other in (friend, mate):  # each: d follows them, they follow d (friend already did)
        graph.send_connection_request(d, other, "")
        graph.accept_connection_request(other, d)
    graph.send_connection_request(asker, d, "")  # asker follows d
    graph.send_connection_request(fan, friend, "")
    graph.accept_connection_request(friend, fan)
    graph.block(blocker, d, "")
    graph.block(d, viewer, "")  # removes viewer -> d
    start_edges = edges_of(storage, d)

    removed = graph.delete_user(d)
    # follows: fan, friend, mate, asker -> d; d -> idol, friend, mate
    assert (removed.follows, removed.connections, removed.requests, removed.blocks) == (7, 2, 1, 2)
    assert 0 < edges_of(storage, d) < start_edges, "one batch ran in the request, the rest is the job's"

    # Reads: d is nobody, and nobody's lists show d.
    with pytest.raises(NotFound):
        graph.get_user(d)
    assert graph.get_counts([d])[0] == type(graph.get_counts([d])[0])(d)
    assert graph.list_followers(d, 50, "", None).items == []
    assert graph.list_following(d, 50, "", None).items == []
    assert graph.list_connections(d, 50, "", None).items == []
    assert graph.list_requests(d, True, 50, "").items == []
    assert graph.list_blocked(d, 50, "").items == []
    assert graph.list_feed_sources(d, 50, "").items == []
    assert [u.user_id for u in graph.list_followers(idol, 50, "", None).items] == [fan]
    assert [u.user_id for u in graph.list_following(asker, 50, "", None).items] == []
    assert [u.user_id for u in graph.list_following(mate, 50, "", fan).items] == []
    assert [u.user_id for u in graph.list_connections(friend, 50, "", None).items] == [fan]
    assert [s.author_id for s in graph.list_feed_sources(fan, 50, "").items] == [friend, idol]
    assert graph.list_requests(asker, False, 50, "").items == []
    assert graph.list_blocked(blocker, 50, "").items == []
    assert graph.mutual_connections(friend, mate, 10) == (0, [])
    assert graph.get_relationship(friend, mate).mutual_connections_count == 0
    relationship = graph.get_relationship(fan, d)
    assert not (relationship.followed_by or relationship.following) and relationship.can_interact
    assert not graph.get_relationship(blocker, d).blocking
    assert not graph.get_relationship(d, viewer).blocking
    assert graph.can_interact(blocker, d) and graph.can_interact(d, blocker)
    assert graph.filter_interactable(blocker, [d, fan]) == [d, fan]
    assert graph.filter_interactable(viewer, [d, fan]) == [d, fan]
    # Other users' counters drop as the job's batches commit (the README's choice).
    assert graph.get_counts([blocker])[0].blocked in (0, 1)

    # Writes: creating anything with d waits for the deletion; removals find nothing.
    for write in (
        lambda: graph.follow(fan, d),
        lambda: graph.follow(d, fan),
        lambda: graph.send_connection_request(fan, d, ""),
        lambda: graph.block(fan, d, ""),
        lambda: graph.upsert_user(User(d, Role.MEMBER, "Back", "", 0)),
    ):
        with pytest.raises(NotFound) as raised:
            write()
        assert raised.value.reason.name == "USER_NOT_FOUND"
    with pytest.raises(NotFound) as raised:
        graph.accept_connection_request(d, asker)
    assert raised.value.reason.name == "REQUEST_NOT_FOUND"
    assert not graph.unfollow(fan, d) and not graph.remove_follower(d, fan)
    assert not graph.remove_connection(friend, d) and not graph.unblock(blocker, d)
    assert not graph.decline_connection_request(d, asker) and not graph.cancel_connection_request(asker, d)
    assert graph.delete_user(d) == type(removed)(), "a deletion in progress is not started again"

    # Maintenance keeps d at zero while the job has rows left to remove.
    assert graph.recount() == []
    assert graph.get_counts([d])[0].followers == 0

    assert finish_jobs(graph) == 1
    assert edges_of(storage, d) == 0
    assert graph.recount() == []
    counts = {c.user_id: c for c in graph.get_counts([fan, idol, friend, mate, asker, blocker, viewer])}
    assert (counts[fan].following, counts[fan].connections, counts[idol].followers) == (2, 1, 1)
    assert (counts[friend].followers, counts[friend].following, counts[friend].connections) == (1, 1, 1)
    assert (counts[mate].followers, counts[mate].following, counts[mate].connections) == (0, 0, 0)
    assert (counts[asker].outgoing_requests, counts[asker].following, counts[blocker].blocked) == (0, 0, 0)
    assert counts[viewer].following == 0

    events = [(kind, actor, subject, cause) for kind, actor, subject, cause in events_about(storage, d)]
    tail = events[[i for i, e in enumerate(events) if e[0] is EventKind.BLOCKED and e[1] == d][0] + 1 :]
    assert tail[-1] == (EventKind.USER_DELETED, d, d, Cause.REQUEST)
    assert sorted(tail[:-1]) == sorted(
        [(EventKind.UNFOLLOWED, x, d, Cause.USER_DELETED) for x in (fan, friend, mate, asker)]
        + [(EventKind.UNFOLLOWED, d, x, Cause.USER_DELETED) for x in (idol, friend, mate)]
        + [(EventKind.CONNECTION_REMOVED, d, x, Cause.USER_DELETED) for x in (friend, mate)]
        + [(EventKind.CONNECTION_REQUEST_CANCELLED, asker, d, Cause.USER_DELETED)]
        + [(EventKind.UNBLOCKED, blocker, d, Cause.USER_DELETED), (EventKind.UNBLOCKED, d, viewer, Cause.USER_DELETED)]
    )

    # Once the job is done, the id takes part again as a new member.
    assert graph.follow(d, fan)[0]
    assert graph.get_counts([d])[0].following == 1


# ------------------------------------------------------------ big accounts


@pytest.fixture
def pg_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with temporary_database("postgres", tmp_path_factory.mktemp("pg")) as url:
        yield url


@pytest.fixture
def pg_storage(pg_url: str) -> Iterator[SqlStorage]:
    storage = open_storage(pg_url, pool_size=8)
    upgrade(storage)
    yield storage
    storage.close()


def wrong_counters(storage: SqlStorage) -> int:
    """Users whose stored following/followers/blocked differ from the rows."""
    return scalar(
        storage,
        "WITH f_out AS (SELECT follower_id AS u, count(*) AS n FROM follows GROUP BY 1),"
        " f_in AS (SELECT followee_id AS u, count(*) AS n FROM follows GROUP BY 1),"
        " b AS (SELECT blocker_id AS u, count(*) AS n FROM blocks GROUP BY 1)"
        " SELECT count(*) FROM user_counters uc"
        " LEFT JOIN f_out ON f_out.u = uc.user_id LEFT JOIN f_in ON f_in.u = uc.user_id"
        " LEFT JOIN b ON b.u = uc.user_id"
        " WHERE uc.following <> coalesce(f_out.n, 0) OR uc.followers <> coalesce(f_in.n, 0)"
        " OR uc.blocked <> coalesce(b.n, 0)",
    )


def event_counts(storage: SqlStorage, kind: EventKind, cause: Cause, **where: str) -> tuple[int, int]:
    """How many events of ``kind`` and ``cause`` name the user, and how many distinct other users."""
    column, user_id = next(iter(where.items()))
    other = "actor_id" if column == "subject_id" else "subject_id"
    events, others = (
        scalar(
            storage,
            f"SELECT count({'DISTINCT ' + other if distinct else '*'}) FROM events"
            f" WHERE {column} = :u AND kind = :k AND payload LIKE :cause",
            u=user_id, k=int(kind), cause=f'%"cause":{int(cause)}%',
        )
        for distinct in (False, True)
    )
    return events, others


def run_jobs_in_background(graph: Graph, user_id: str, kind: JobKind, timeout: float = 900.0) -> float:
    """Starts the runner, waits until ``user_id``'s job is gone; returns the seconds it took."""
    started = time.monotonic()
    graph.jobs.start()
    try:
        while (user_id, kind) in graph.storage.read_only(lambda tx: tx.pending_jobs()):
            assert time.monotonic() - started < timeout, "the job did not finish"
            time.sleep(0.2)
    finally:
        graph.jobs.stop()
    return time.monotonic() - started


@pytest.mark.postgres
def test_deleting_300k_followers_returns_at_once_and_the_job_removes_every_edge(pg_storage: SqlStorage) -> None:
    graph = make_graph(pg_storage, inline_seconds=0.05)
    big, fan = new_user(), new_user()
    graph.upsert_user(User(big, Role.MEMBER, "Famous", "", 0))
    graph.follow(fan, big)
    seed_followers(pg_storage, big, FOLLOWERS)
    with pg_storage.engine.connect() as conn:
        follower = conn.execute(
            text("SELECT follower_id FROM follows WHERE followee_id = :u LIMIT 1"), {"u": big}
        ).scalar()
    assert isinstance(follower, str)

    removed = graph.delete_user(big)
    assert removed.follows == FOLLOWERS + 1
    assert edges_of(pg_storage, big) > FOLLOWERS // 2, "the request left the edges to the job"
    assert graph.get_counts([big])[0].followers == 0
    assert graph.list_following(fan, 50, "", None).items == []
    assert not graph.get_relationship(fan, big).following
    with pytest.raises(NotFound):
        graph.follow(fan, big)

    seconds = run_jobs_in_background(graph, big, JobKind.DELETE)
    print(f"\n300k followers removed in {seconds:.1f} s; longest batch {graph.jobs.longest_batch * 1000:.0f} ms")
    assert edges_of(pg_storage, big) == 0
    assert wrong_counters(pg_storage) == 0
    assert scalar(pg_storage, "SELECT count(*) FROM user_counters WHERE user_id = :u", u=big) == 0
    assert [c.following for c in graph.get_counts([fan, follower])] == [0, 0]
    assert event_counts(pg_storage, EventKind.UNFOLLOWED, Cause.USER_DELETED, subject_id=big) == (
        FOLLOWERS + 1, FOLLOWERS + 1
    )
    sequence(pg_storage)
    last = scalar(pg_storage, "SELECT max(seq) FROM events WHERE subject_id = :u", u=big)
    assert scalar(pg_storage, "SELECT kind FROM events WHERE seq = :s", s=last) == EventKind.USER_DELETED
    assert scalar(pg_storage, "SELECT count(*) FROM events WHERE kind = :k AND actor_id = :u",
                  k=int(EventKind.USER_DELETED), u=big) == 1
    assert scalar(pg_storage, "SELECT count(*) FROM events WHERE seq IS NULL") == 0


@pytest.mark.postgres
def test_promoting_a_user_150k_users_block_lifts_every_block_off_the_request_path(pg_storage: SqlStorage) -> None:
    graph = make_graph(pg_storage, inline_seconds=0.05)
    target, member = new_user(), new_user()
    graph.upsert_user(User(target, Role.MEMBER, "", "", 0))
    graph.block(member, target, "")
    seed_blockers(pg_storage, target, BLOCKERS)

    graph.upsert_user(User(target, Role.MODERATOR, "", "", 0))
    assert graph.get_user(target).role is Role.MODERATOR
    assert scalar(pg_storage, "SELECT count(*) FROM blocks WHERE blocked_id = :u", u=target) > BLOCKERS // 2
    with pytest.raises(GraphError) as refused:
        graph.block(new_user(), target, "")
    assert refused.value.reason.name == "CANNOT_BLOCK_STAFF"

    seconds = run_jobs_in_background(graph, target, JobKind.LIFT_BLOCKS)
    print(f"\n150k blocks lifted in {seconds:.1f} s; longest batch {graph.jobs.longest_batch * 1000:.0f} ms")
    assert scalar(pg_storage, "SELECT count(*) FROM blocks WHERE blocked_id = :u", u=target) == 0
    assert wrong_counters(pg_storage) == 0
    assert graph.get_counts([member])[0].blocked == 0
    assert event_counts(pg_storage, EventKind.UNBLOCKED, Cause.PROMOTION, subject_id=target) == (
        BLOCKERS + 1, BLOCKERS + 1
    )


CRASH_FOLLOWERS = 20_000


@pytest.mark.postgres
def test_a_deletion_whose_server_is_killed_is_finished_by_another_process(pg_url: str, pg_storage: SqlStorage) -> None:
    """SIGKILL the process running a deletion: its batch in flight rolls
    back, and once its lease runs out another process finishes the job,
    every edge removed once, counters and events exact."""
    big = new_user()
    seed_followers(pg_storage, big, CRASH_FOLLOWERS)
    flags = ("--database-url", pg_url, "--job-inline-ms", "0", "--job-lease-ms", "2000", "--edge-batch-size", "500")
    env = clean_env()
    with running_server(*flags, env=env) as (address, process):
        with grpc.insecure_channel(address) as channel:
            admin = admin_pb2_grpc.AdminServiceStub(channel)
            removed = admin.DeleteUser(apb.DeleteUserRequest(user_id=big), timeout=30)
        assert removed.removed_follows == CRASH_FOLLOWERS
        deadline = time.monotonic() + 60
        while edges_of(pg_storage, big) > CRASH_FOLLOWERS * 0.9:
            assert time.monotonic() < deadline, "the job did not start"
            time.sleep(0.05)
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
    left = edges_of(pg_storage, big)
    assert 0 < left < CRASH_FOLLOWERS, "killed mid-deletion"
    time.sleep(0.5)
    assert edges_of(pg_storage, big) == left, "nobody works on it while the dead process's lease lasts"

    with running_server(*flags, env=env):
        deadline = time.monotonic() + 600
        while scalar(pg_storage, "SELECT count(*) FROM user_jobs WHERE user_id = :u", u=big):
            assert time.monotonic() < deadline, "the job was not taken over"
            time.sleep(0.2)
    assert edges_of(pg_storage, big) == 0
    assert wrong_counters(pg_storage) == 0
    assert event_counts(pg_storage, EventKind.UNFOLLOWED, Cause.USER_DELETED, subject_id=big) == (
        CRASH_FOLLOWERS, CRASH_FOLLOWERS
    )
    assert scalar(pg_storage, "SELECT count(*) FROM events WHERE kind = :k AND actor_id = :u",
                  k=int(EventKind.USER_DELETED), u=big) == 1
