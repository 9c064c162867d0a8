"""``Tx`` reads: relationships, blocks among candidates, mutual connections,
the keyset-paged lists, reports and totals."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import pytest

from storage.types import (
    Block,
    Cursor,
    FeedSource,
    RelatedUser,
    Relationship,
    Report,
    ReportReason,
    ReportStatus,
    Role,
    Storage,
    Totals,
    Tx,
    User,
)

from .edges import block, connect, follow, request, tick

T = TypeVar("T")

# ---------------------------------------------------------- relationships


def test_relationships_from_the_users_side(storage: Storage, user: Callable[[], str]) -> None:
    me, fan, idol, friend, asked, asker, foe, hater, stranger = (user() for _ in range(9))
    follow(storage, fan, me)
    follow(storage, me, idol)
    connect(storage, me, friend)
    request(storage, me, asked)
    request(storage, asker, me)
    block(storage, me, foe)
    block(storage, hater, me)
    others = [fan, idol, friend, asked, asker, foe, hater, stranger]
    found = storage.read_only(lambda tx: tx.relationships(me, others + [fan])).relationships
    assert set(found) == set(others)
    flags = {
        other: tuple(
            name
            for name in (
                "following", "followed_by", "connected", "outgoing_request_pending",
                "incoming_request_pending", "blocking", "blocked_by",
            )
            if getattr(found[other], name)
        )
        for other in others
    }
    assert flags == {
        fan: ("followed_by",),
        idol: ("following",),
        friend: ("connected",),
        asked: ("outgoing_request_pending",),
        asker: ("incoming_request_pending",),
        foe: ("blocking",),
        hater: ("blocked_by",),
        stranger: (),
    }
    assert [found[o].can_interact for o in (foe, hater, stranger)] == [False, False, True]
    from_friend = storage.read_only(lambda tx: tx.relationships(friend, [me])).relationships[me]
    assert found[friend].seen_by_other(me) == from_friend


def test_relationships_count_mutual_connections(storage: Storage, user: Callable[[], str]) -> None:
    a, b, c1, c2, only_a = (user() for _ in range(5))
    for shared in (c1, c2):
        connect(storage, a, shared)
        connect(storage, b, shared)
    connect(storage, a, only_a)
    follow(storage, b, only_a)
    assert storage.read_only(lambda tx: tx.relationships(a, [b])).relationships[b].mutual_connections_count == 2


def test_relationships_carry_both_counter_versions(storage: Storage, user: Callable[[], str]) -> None:
    a, b, nobody = user(), user(), user()
    follow(storage, a, b)
    versions = storage.read_only(lambda tx: tx.counts([a, b]))
    read = storage.read_only(lambda tx: tx.relationships(a, [b, nobody]))
    assert read.versions == {b: (versions[a].version, versions[b].version), nobody: (versions[a].version, 0)}


def test_blocked_among_finds_blocks_either_way(storage: Storage, user: Callable[[], str]) -> None:
    me, foe, hater, friend = user(), user(), user(), user()
    block(storage, me, foe)
    block(storage, hater, me)
    connect(storage, me, friend)
    block(storage, foe, friend)  # between candidates: not the viewer's
    found = storage.read_only(lambda tx: tx.blocked_among(me, [foe, hater, friend, foe]))
    assert found == {foe, hater}


def test_mutual_connections_count_and_newest_first(storage: Storage, user: Callable[[], str]) -> None:
    a, b = user(), user()
    shared = [user() for _ in range(3)]
    for other in shared:
        connect(storage, b, other)
    for other in shared:
        connect(storage, a, other)
    storage.read_write(lambda tx: tx.upsert_user(User(shared[0], Role.MEMBER, "Zed", "https://z/1", 0), tick()))
    count, users = storage.read_only(lambda tx: tx.mutual_connections(a, b, 2))
    assert count == 3
    assert [u.user_id for u in users] == [shared[2], shared[1]]
    _, every = storage.read_only(lambda tx: tx.mutual_connections(a, b, 10))
    assert (every[-1].display_name, every[-1].avatar_url) == ("Zed", "https://z/1")


# ------------------------------------------------------------------ lists


def walk(
    storage: Storage, read: Callable[[Tx, Cursor | None, int], Sequence[T]], position: Callable[[T], Cursor], size: int
) -> list[T]:
    """Every item of a list, ``size`` at a time, each page after the last
    item of the one before."""
    items: list[T] = []
    after: Cursor | None = None
    while True:

        def page_after(tx: Tx, after: Cursor | None = after) -> Sequence[T]:
            return read(tx, after, size)

        page = storage.read_only(page_after)
        items.extend(page)
        if len(page) < size:
            return items
        after = position(page[-1])


def by_user(u: RelatedUser) -> Cursor:
    return Cursor(u.since_us, u.user_id)


@pytest.mark.parametrize("size", [1, 2, 10])
def test_followers_newest_first_in_pages(storage: Storage, user: Callable[[], str], size: int) -> None:
    owner = user()
    fans = [user() for _ in range(5)]
    times = [follow(storage, fan, owner) for fan in fans]
    found = walk(storage, lambda tx, after, n: tx.list_followers(owner, after, n, None), by_user, size)
    assert found == [RelatedUser(fan, at, "", "") for fan, at in zip(fans[::-1], times[::-1], strict=True)]


def test_lists_break_ties_in_time_by_user_id(storage: Storage, user: Callable[[], str]) -> None:
    owner = user()
    at = tick()
    fans = [user() for _ in range(4)]
    for fan in fans:
        follow(storage, fan, owner, at)
    found = walk(storage, lambda tx, after, n: tx.list_followers(owner, after, n, None), by_user, 1)
    assert [u.user_id for u in found] == sorted(fans, reverse=True)


def test_a_cursor_is_exclusive_and_stable_while_items_come_and_go(storage: Storage, user: Callable[[], str]) -> None:
    owner = user()
    old = [user() for _ in range(3)]
    for fan in old:
        follow(storage, fan, owner)
    first = storage.read_only(lambda tx: tx.list_followers(owner, None, 1, None))
    assert [u.user_id for u in first] == [old[2]]
    follow(storage, user(), owner)  # newer than the cursor: not in this walk

    def unfollow(tx: Tx) -> bool:
        tx.lock_users((old[2], owner))
        return tx.delete_follow(old[2], owner)

    storage.read_write(unfollow)  # the cursor's own item goes
    rest = storage.read_only(lambda tx: tx.list_followers(owner, by_user(first[0]), 10, None))
    assert [u.user_id for u in rest] == [old[1], old[0]]


def test_following_and_connections_lists(storage: Storage, user: Callable[[], str]) -> None:
    owner, idol, friend = user(), user(), user()
    followed = follow(storage, owner, idol)
    connected = connect(storage, friend, owner)
    storage.read_write(lambda tx: tx.upsert_user(User(friend, Role.MEMBER, "Fay", "https://f/1", 0), tick()))
    assert storage.read_only(lambda tx: tx.list_following(owner, None, 10, None)) == [
        RelatedUser(idol, followed, "", "")
    ]
    assert storage.read_only(lambda tx: tx.list_connections(owner, None, 10, None)) == [
        RelatedUser(friend, connected, "Fay", "https://f/1")
    ]


@pytest.mark.parametrize("kind", ["list_followers", "list_following", "list_connections"])
def test_a_viewer_never_sees_users_blocked_with_them(storage: Storage, user: Callable[[], str], kind: str) -> None:
    owner, viewer, foe, hater, friend = (user() for _ in range(5))
    for other in (foe, hater, friend):
        if kind == "list_followers":
            follow(storage, other, owner)
        elif kind == "list_following":
            follow(storage, owner, other)
        else:
            connect(storage, owner, other)
    block(storage, viewer, foe)
    block(storage, hater, viewer)

    def ids(viewer_id: str | None) -> list[str]:
        return [u.user_id for u in storage.read_only(lambda tx: getattr(tx, kind)(owner, None, 10, viewer_id))]

    assert ids(viewer) == [friend]
    assert ids(None) == [friend, hater, foe]


def test_request_lists_by_direction(storage: Storage, user: Callable[[], str]) -> None:
    me = user()
    incoming = [request(storage, user(), me) for _ in range(3)]
    outgoing = [request(storage, me, user(), "hi") for _ in range(2)]

    def read(incoming_side: bool) -> Callable[[Tx, Cursor | None, int], Sequence[Any]]:
        return lambda tx, after, n: tx.list_requests(me, incoming_side, after, n)

    def position(r: Any) -> Cursor:
        return Cursor(r.created_us, r.request_id)

    assert walk(storage, read(True), position, 2) == incoming[::-1]
    assert walk(storage, read(False), position, 1) == outgoing[::-1]


def test_blocked_list_holds_only_the_users_own_blocks(storage: Storage, user: Callable[[], str]) -> None:
    me = user()
    mine = [block(storage, me, user(), f"reason {i}") for i in range(3)]
    block(storage, user(), me)

    def position(b: Block) -> Cursor:
        return Cursor(b.created_us, b.blocked_id)

    assert walk(storage, lambda tx, after, n: tx.list_blocked(me, after, n), position, 2) == mine[::-1]


def test_feed_sources_are_followees_private_when_connected(storage: Storage, user: Callable[[], str]) -> None:
    """N1: private posts only from users one both follows and is connected to."""
    me, public, friend, only_connected, fan = (user() for _ in range(5))
    followed = follow(storage, me, public)
    connect(storage, me, friend)
    befriended = follow(storage, me, friend)
    connect(storage, me, only_connected)
    follow(storage, fan, me)

    def position(s: FeedSource) -> Cursor:
        return Cursor(s.since_us, s.author_id)

    found = walk(storage, lambda tx, after, n: tx.list_feed_sources(me, after, n), position, 1)
    assert found == [FeedSource(friend, True, befriended), FeedSource(public, False, followed)]


# -------------------------------------------------------- reports, totals


def report(reporter: str, reported: str, status: ReportStatus = ReportStatus.OPEN) -> Report:
    return Report(str(uuid.uuid4()), reporter, reported, ReportReason.SPAM, "details", status, "", "", tick(), None)


def insert(storage: Storage, *reports: Report) -> None:
    def run(tx: Tx) -> None:
        for r in reports:
            tx.insert_report(r)

    storage.read_write(run)


def test_reports_are_stored_updated_and_listed_by_status(empty_storage: Storage, user: Callable[[], str]) -> None:
    reports = [report(user(), user()) for _ in range(3)]
    insert(empty_storage, *reports)
    assert empty_storage.read_only(lambda tx: tx.get_report(reports[0].report_id)) == reports[0]
    assert empty_storage.read_only(lambda tx: tx.get_report("no such report")) is None
    resolved = dataclasses.replace(
        reports[1], status=ReportStatus.DISMISSED, resolved_by="mod", note="fine", resolved_us=tick()
    )
    empty_storage.read_write(lambda tx: tx.update_report(resolved))
    assert empty_storage.read_only(lambda tx: tx.get_report(resolved.report_id)) == resolved

    def listed(status: ReportStatus) -> list[Report]:
        return walk(
            empty_storage,
            lambda tx, after, n: tx.list_reports(status, after, n),
            lambda r: Cursor(r.created_us, r.report_id),
            1,
        )

    assert listed(ReportStatus.OPEN) == [reports[2], reports[0]]
    assert listed(ReportStatus.DISMISSED) == [resolved]
    assert listed(ReportStatus.ACTIONED) == []


def test_totals_count_every_kind_and_since_a_time(empty_storage: Storage, user: Callable[[], str]) -> None:
    a, b, c = user(), user(), user()
    assert empty_storage.read_only(lambda tx: tx.totals(None)) == Totals(0, 0, 0, 0, 0, 0)
    empty_storage.read_write(lambda tx: tx.upsert_user(User(a, Role.MEMBER, "", "", 0), 10))
    follow(empty_storage, a, b, at=10)
    follow(empty_storage, b, a)
    connect(empty_storage, a, b)  # one pair, counted once
    request(empty_storage, a, c)
    block(empty_storage, c, b)
    insert(empty_storage, report(a, c), report(b, c, ReportStatus.ACTIONED))
    assert empty_storage.read_only(lambda tx: tx.totals(None)) == Totals(1, 2, 1, 1, 1, 1)
    assert empty_storage.read_only(lambda tx: tx.totals(11)) == Totals(0, 1, 1, 1, 1, 1)


def test_relationship_type_is_what_reads_return(storage: Storage, user: Callable[[], str]) -> None:
    a, b = user(), user()
    found = storage.read_only(lambda tx: tx.relationships(a, [b])).relationships[b]
    assert found == Relationship(b, False, False, False, False, False, False, False, 0)
