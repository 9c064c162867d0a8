"""``Tx`` account removal: ``delete_user_edges`` in batches, ``delete_user``
whole, each keeping every other user's counters exact; and ``recount``."""

from __future__ import annotations

import uuid
from collections.abc import Callable

from storage.types import Cascade, Counts, Report, ReportReason, ReportStatus, Role, Storage, Tx, User

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


def test_delete_user_removes_every_edge_and_the_record(storage: Storage, user: Callable[[], str]) -> None:
    d = user()
    storage.read_write(lambda tx: tx.upsert_user(User(d, Role.MEMBER, "Dee", "", 0), tick()))
    p = everything(storage, user, d)
    report = Report(str(uuid.uuid4()), p["a"], d, ReportReason.SPAM, "", ReportStatus.OPEN, "", "", tick(), None)
    storage.read_write(lambda tx: tx.insert_report(report))

    def delete(tx: Tx) -> Cascade:
        tx.lock_users((d,))
        return tx.delete_user(d)

    cascade = storage.read_write(delete)
    assert cascade.follows == sorted([(d, p["a"]), (p["b"], d)])
    assert cascade.connections == [(d, p["c"])]
    assert sorted((r, s) for _, r, s in cascade.requests) == sorted([(d, p["e"]), (p["f"], d)])
    assert cascade.blocks == sorted([(d, p["g"]), (p["h"], d)])
    assert cascade.user_existed
    assert (cascade.removed.follows, cascade.removed.connections, cascade.removed.requests) == (2, 1, 2)
    assert storage.read_only(lambda tx: tx.get_user(d)) is None
    assert d not in storage.read_only(lambda tx: tx.counts([d]))
    assert all(short(c) == short(Counts(c.user_id)) for c in counts(storage, *p.values()))
    assert storage.read_only(lambda tx: tx.get_report(report.report_id)) == report  # R4: reports kept
    again = storage.read_write(delete)
    assert again == Cascade([], [], [], [], user_existed=False)


def test_delete_user_edges_goes_in_batches_and_keeps_the_record(storage: Storage, user: Callable[[], str]) -> None:
    d = user()
    storage.read_write(lambda tx: tx.upsert_user(User(d, Role.MEMBER, "", "", 0), tick()))
    fans = [user() for _ in range(5)]
    for fan in fans:
        follow(storage, fan, d)
    friends = [user() for _ in range(3)]
    for friend in friends:
        connect(storage, d, friend)

    def batch(tx: Tx) -> Cascade:
        tx.lock_users((d,))
        return tx.delete_user_edges(d, 2)

    sizes = []
    while True:
        cascade = storage.read_write(batch)
        sizes.append((len(cascade.follows), len(cascade.connections)))
        assert not cascade.user_existed
        if cascade.removed == type(cascade.removed)():
            break
        # Between batches every counter is exact.
        assert storage.read_write(lambda tx: tx.recount()) == []
    assert sizes == [(2, 2), (2, 1), (1, 0), (0, 0)]
    assert short(counts(storage, d)[0]) == (0, 0, 0, 0, 0, 0)
    assert storage.read_only(lambda tx: tx.get_user(d)) is not None


def test_recount_finds_nothing_after_every_kind_of_write(empty_storage: Storage, user: Callable[[], str]) -> None:
    d = user()
    p = everything(empty_storage, user, d)

    def remove_some(tx: Tx) -> None:
        tx.lock_users((d, p["a"], p["c"], p["g"]))
        tx.delete_follow(d, p["a"])
        tx.delete_connection(p["c"], d)
        tx.delete_block(d, p["g"])

    empty_storage.read_write(remove_some)
    empty_storage.read_write(lambda tx: (tx.lock_users((p["b"],)), tx.delete_user(p["b"])))
    assert empty_storage.read_write(lambda tx: tx.recount()) == []
