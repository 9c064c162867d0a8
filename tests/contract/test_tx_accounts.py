"""``Tx`` account removal: ``start_deletion`` tombstones the user (hidden
from every read of the others at once), ``delete_edges`` removes their edges
in bounded batches, each keeping every other user's counters exact, and
``finish_deletion`` drops what is left; and ``recount``."""

from __future__ import annotations

import uuid
from collections.abc import Callable

from storage.deletion import JobKind
from storage.types import Cascade, Counts, Removed, Report, ReportReason, ReportStatus, Role, Storage, Tx, User

from .edges import block, connect, counts, follow, request, short, tick


def everything(storage: Storage, user: Callable[[], str], d: str) -> dict[str, str]:
    """``d`` follows a, is followed by b, is connected to c, has a pending
    request to e and one from f, blocks g and is blocked by h."""
    people = {name: user() for name in "abcefgh"}
    follow(storage, d, people["a"])
    follow(storage, people["b"], d)
    connect(storage, d, people["c"])
    request(storage, d, people["e"])
    request(storage, people["f"], d)
    block(storage, d, people["g"])
    block(storage, people["h"], d)
    return people


def start(storage: Storage, d: str) -> tuple[Removed, bool] | None:
    """Tombstones ``d`` as the rules layer does: their lock first."""

    def run(tx: Tx) -> tuple[Removed, bool] | None:
        tx.lock_users((d,))
        return tx.start_deletion(d, tick())

    return storage.read_write(run)


def others_exact(storage: Storage) -> list[str]:
    """``recount`` as the rules layer runs it (the users being deleted keep
    zero counters); asserts that it found nothing wrong for anybody else
    and returns the users being deleted."""

    def run(tx: Tx) -> tuple[list[str], list[str]]:
        fixes = tx.recount()
        deleting = tx.zero_deleting_counters()
        return [fix.user_id for fix in fixes if fix.user_id not in deleting], deleting

    wrong, deleting = storage.read_write(run)
    assert wrong == []
    return deleting


def test_start_deletion_tombstones_the_user_and_hides_them_from_the_others(
    storage: Storage, user: Callable[[], str]
) -> None:
    d = user()
    storage.read_write(lambda tx: tx.upsert_user(User(d, Role.MEMBER, "Dee", "", 0), tick()))
    p = everything(storage, user, d)
    m = user()
    connect(storage, m, d)
    connect(storage, m, p["c"])
    report = Report(str(uuid.uuid4()), p["a"], d, ReportReason.SPAM, "", ReportStatus.OPEN, "", "", tick(), None)
    storage.read_write(lambda tx: tx.insert_report(report))
    assert storage.read_only(lambda tx: tx.mutual_connections(p["c"], m, 10))[0] == 1

    assert start(storage, d) == (Removed(follows=2, connections=2, requests=2, blocks=2), True)

    assert storage.read_only(lambda tx: tx.get_user(d)) is None
    assert short(counts(storage, d)[0]) == (0, 0, 0, 0, 0, 0)
    assert storage.read_only(lambda tx: tx.deleting([d, p["a"], d])) == {d}
    assert (d, JobKind.DELETE) in storage.read_only(lambda tx: tx.pending_jobs())

    def lists(tx: Tx) -> list[list[str]]:
        return [
            [u.user_id for u in tx.list_followers(p["a"], None, 10, None)],
            [u.user_id for u in tx.list_following(p["b"], None, 10, None)],
            [u.user_id for u in tx.list_connections(p["c"], None, 10, None)],
            [u.user_id for u in tx.list_connections(m, None, 10, p["c"])],
            [r.requester_id for r in tx.list_requests(p["e"], True, None, 10)],
            [r.recipient_id for r in tx.list_requests(p["f"], False, None, 10)],
            [b.blocked_id for b in tx.list_blocked(p["h"], None, 10)],
            [s.author_id for s in tx.list_feed_sources(p["b"], None, 10)],
        ]

    assert storage.read_only(lists) == [[], [], [m], [p["c"]], [], [], [], []]
    seen = storage.read_only(lambda tx: tx.relationships(p["a"], [d, p["b"]])).relationships
    assert seen[d].other_user_id == d
    assert not any((seen[d].followed_by, seen[d].blocking, seen[d].blocked_by, seen[d].connected))
    by_d = storage.read_only(lambda tx: tx.relationships(d, [p["a"], p["g"]])).relationships
    assert not by_d[p["a"]].following and by_d[p["g"]].can_interact
    assert storage.read_only(lambda tx: tx.blocked_among(p["h"], [d, p["a"]])) == set()
    assert storage.read_only(lambda tx: tx.blocked_among(p["g"], [d])) == set()
    assert storage.read_only(lambda tx: tx.mutual_connections(p["c"], m, 10)) == (0, [])
    assert start(storage, d) is None, "a deletion in progress is not started again"

    # The other users' edges to d are still stored, and still counted.
    assert short(counts(storage, p["a"])[0]) == (1, 0, 0, 0, 0, 0)
    assert short(counts(storage, p["h"])[0]) == (0, 0, 0, 0, 0, 1)
    assert others_exact(storage) == [d]

    cascade = storage.read_write(lambda tx: tx.delete_edges(d, 100))
    assert cascade.follows == sorted([(d, p["a"]), (p["b"], d)])
    assert cascade.connections == sorted([(d, p["c"]), (d, m)])
    assert sorted((r, s) for _, r, s in cascade.requests) == sorted([(d, p["e"]), (p["f"], d)])
    assert cascade.blocks == sorted([(d, p["g"]), (p["h"], d)])
    assert not cascade.user_existed
    assert cascade.removed == Removed(follows=2, connections=2, requests=2, blocks=2)
    others = [u for name, u in p.items() if name != "c"]
    assert all(short(c) == short(Counts(c.user_id)) for c in counts(storage, *others))
    assert [short(c) for c in counts(storage, p["c"], m)] == [(0, 0, 1, 0, 0, 0)] * 2  # connected to each other

    storage.read_write(lambda tx: tx.finish_deletion(d))
    assert d not in storage.read_only(lambda tx: tx.counts([d]))
    assert storage.read_only(lambda tx: tx.deleting([d])) == set()
    assert (d, JobKind.DELETE) not in storage.read_only(lambda tx: tx.pending_jobs())
    assert others_exact(storage) == []
    assert storage.read_only(lambda tx: tx.get_report(report.report_id)) == report  # R4: reports kept
    assert start(storage, d) == (Removed(), False), "nothing is left to delete"


def test_start_deletion_adds_a_job_only_for_a_record_or_an_edge(storage: Storage, user: Callable[[], str]) -> None:
    nobody, registered, followed = user(), user(), user()
    storage.read_write(lambda tx: tx.upsert_user(User(registered, Role.MEMBER, "", "", 0), tick()))
    fan = user()
    follow(storage, fan, followed)

    assert start(storage, nobody) == (Removed(), False)
    assert start(storage, registered) == (Removed(), True)
    assert start(storage, followed) == (Removed(follows=1), True)
    assert storage.read_only(lambda tx: tx.deleting([nobody, registered, followed])) == {registered, followed}
    assert storage.read_only(lambda tx: tx.get_user(registered)) is None
    for d in (registered, followed):

        def remove(tx: Tx, d: str = d) -> Cascade:
            cascade = tx.delete_edges(d, 10)
            tx.finish_deletion(d)
            return cascade

        assert storage.read_write(remove).follows == ([(fan, followed)] if d == followed else [])
    assert storage.read_only(lambda tx: tx.deleting([registered, followed])) == set()
    assert short(counts(storage, fan)[0]) == (0, 0, 0, 0, 0, 0)


def test_delete_edges_goes_in_bounded_batches_keeping_the_others_exact(
    storage: Storage, user: Callable[[], str]
) -> None:
    d = user()
    storage.read_write(lambda tx: tx.upsert_user(User(d, Role.MEMBER, "", "", 0), tick()))
    fans = [user() for _ in range(5)]
    for fan in fans:
        follow(storage, fan, d)
    friends = [user() for _ in range(3)]
    for friend in friends:
        connect(storage, d, friend)
    assert start(storage, d) == (Removed(follows=5, connections=3), True)

    sizes = []
    removed: list[Cascade] = []
    while True:
        cascade = storage.read_write(lambda tx: tx.delete_edges(d, 2))
        removed.append(cascade)
        sizes.append((len(cascade.follows), len(cascade.connections)))
        assert not cascade.user_existed
        # Between batches every other user's counter is exact.
        assert others_exact(storage) == [d]
        left = [f for f in fans if (f, d) not in {e for c in removed for e in c.follows}]
        assert [c.following for c in counts(storage, *fans)] == [int(f in left) for f in fans]
        if sum(len(edges) for edges in (cascade.follows, cascade.connections, cascade.requests, cascade.blocks)) < 2:
            break
    assert sizes == [(2, 0), (2, 0), (1, 1), (0, 2), (0, 0)]
    assert sorted(e for c in removed for e in c.follows) == sorted((fan, d) for fan in fans)
    assert sorted(e for c in removed for e in c.connections) == sorted((d, friend) for friend in friends)
    assert all(short(c) == (0, 0, 0, 0, 0, 0) for c in counts(storage, d, *fans, *friends))
    assert storage.read_only(lambda tx: tx.get_user(d)) is None
    assert storage.read_only(lambda tx: tx.deleting([d])) == {d}, "the tombstone stays until finish_deletion"
    storage.read_write(lambda tx: tx.finish_deletion(d))
    assert storage.read_only(lambda tx: tx.deleting([d])) == set()
    assert storage.read_write(lambda tx: tx.recount()) == []


def test_recount_finds_nothing_after_every_kind_of_write(empty_storage: Storage, user: Callable[[], str]) -> None:
    d = user()
    p = everything(empty_storage, user, d)

    def remove_some(tx: Tx) -> None:
        tx.lock_users((d, p["a"], p["c"], p["g"]))
        tx.delete_follow(d, p["a"])
        tx.delete_connection(p["c"], d)
        tx.delete_block(d, p["g"])

    empty_storage.read_write(remove_some)
    assert start(empty_storage, p["b"]) == (Removed(follows=1), True)
    empty_storage.read_write(lambda tx: tx.delete_edges(p["b"], 10))
    empty_storage.read_write(lambda tx: tx.finish_deletion(p["b"]))
    assert empty_storage.read_write(lambda tx: tx.recount()) == []
