"""R1-R4 and the statistics against ``Graph`` directly: each rule, its
domain error, the state it leaves and the events it appends."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from server.rules import Graph, InvalidArgument, NotFound, PermissionDenied, Policy, Reason
from server.rules.graph import Consistency
from storage.deletion import JobKind
from storage.sql import SqlTx
from storage.sql.run import Statement
from storage.types import Cause, Counts, EventKind, Removed, ReportReason, ReportStatus, Role, Storage, Tx, User

from .domain import events, every, limiter, refused


def staff(graph: Graph, user: Callable[[], str], role: Role = Role.MODERATOR) -> str:
    who = user()
    graph.upsert_user(User(who, role, "", "", 0))
    return who


# --------------------------------------------------------------------- R1


@pytest.mark.parametrize("reason", list(ReportReason))
def test_r1_any_member_reports_another(graph: Graph, storage: Storage, user: Callable[[], str],
                                       reason: ReportReason) -> None:
    a, b = user(), user()
    report = graph.report_user(a, b, reason, "details")
    assert (report.reporter_id, report.reported_id, report.reason, report.details, report.status) == (
        a, b, reason, "details", ReportStatus.OPEN
    )
    assert events(storage, a) == [(EventKind.REPORT_FILED, a, b, Cause.REQUEST)]


def test_r1_reporting_oneself_is_invalid(graph: Graph, user: Callable[[], str]) -> None:
    a = user()
    with refused(InvalidArgument, Reason.SELF_RELATIONSHIP):
        graph.report_user(a, a, ReportReason.SPAM, "")


# --------------------------------------------------------------------- R2


@pytest.mark.parametrize("role", [Role.MODERATOR, Role.ADMIN])
def test_r2_staff_list_and_resolve_reports(graph: Graph, storage: Storage, user: Callable[[], str], role: Role) -> None:
    mod = staff(graph, user, role)
    filed = graph.report_user(user(), user(), ReportReason.HATE, "")
    open_ids = [r.report_id for r in every(lambda token: graph.list_reports(mod, ReportStatus.OPEN, 50, token))]
    assert filed.report_id in open_ids
    resolved = graph.resolve_report(filed.report_id, mod, ReportStatus.ACTIONED, "done")
    assert (resolved.status, resolved.resolved_by, resolved.note) == (ReportStatus.ACTIONED, mod, "done")
    assert resolved.resolved_us is not None
    assert graph.resolve_report(filed.report_id, mod, ReportStatus.ACTIONED, "again") == resolved
    actioned = every(lambda token: graph.list_reports(mod, ReportStatus.ACTIONED, 50, token))
    assert resolved in actioned
    assert filed.report_id not in [
        r.report_id for r in every(lambda token: graph.list_reports(mod, ReportStatus.OPEN, 50, token))
    ]
    assert events(storage, mod) == [
        (EventKind.USER_UPSERTED, mod, mod, Cause.REQUEST),
        (EventKind.REPORT_RESOLVED, mod, filed.reported_id, Cause.REQUEST),
    ]


def test_r2_members_may_not_moderate(graph: Graph, user: Callable[[], str]) -> None:
    member, demoted = user(), staff(graph, user)
    graph.upsert_user(User(demoted, Role.MEMBER, "", "", 0))
    filed = graph.report_user(user(), user(), ReportReason.SPAM, "")
    for who in (member, demoted):
        with refused(PermissionDenied, Reason.NOT_A_MODERATOR):
            graph.list_reports(who, ReportStatus.OPEN, 10, "")
        with refused(PermissionDenied, Reason.NOT_A_MODERATOR):
            graph.resolve_report(filed.report_id, who, ReportStatus.DISMISSED, "")


def test_r2_an_unknown_report_is_not_found(graph: Graph, user: Callable[[], str]) -> None:
    with refused(NotFound, Reason.REPORT_NOT_FOUND):
        graph.resolve_report(user(), staff(graph, user), ReportStatus.DISMISSED, "")


# --------------------------------------------------------------------- R3


def test_r3_users_are_kept_with_role_name_and_avatar(graph: Graph, storage: Storage, user: Callable[[], str]) -> None:
    a = user()
    with refused(NotFound, Reason.USER_NOT_FOUND):
        graph.get_user(a)
    first = graph.upsert_user(User(a, Role.MEMBER, "Ann", "https://a/1", 0))
    assert first.created_us > 0
    second = graph.upsert_user(User(a, Role.ADMIN, "Anna", "", 0))
    assert second == User(a, Role.ADMIN, "Anna", "", first.created_us) == graph.get_user(a)
    graph.upsert_user(User(a, Role.ADMIN, "Anna", "", 0))  # no change: no event
    assert [k for k, *_ in events(storage, a)] == [EventKind.USER_UPSERTED, EventKind.USER_UPSERTED]


# --------------------------------------------------------------------- R4


def test_r4_deleting_a_user_removes_every_edge_and_keeps_reports(
    graph: Graph, storage: Storage, user: Callable[[], str]
) -> None:
    d = user()
    graph.upsert_user(User(d, Role.MEMBER, "Dee", "", 0))
    p = {name: user() for name in "abcefgh"}
    graph.follow(d, p["a"])
    graph.follow(p["b"], d)
    graph.send_connection_request(d, p["c"], "")
    graph.accept_connection_request(p["c"], d)
    graph.send_connection_request(d, p["e"], "")
    graph.send_connection_request(p["f"], d, "")
    graph.block(d, p["g"], "")
    graph.block(p["h"], d, "")
    about = graph.report_user(p["a"], d, ReportReason.SPAM, "")
    assert graph.delete_user(d) == Removed(follows=6, connections=1, requests=2, blocks=2)
    with refused(NotFound, Reason.USER_NOT_FOUND):
        graph.get_user(d)
    assert graph.get_counts([d, *p.values()]) == [Counts(x) for x in (d, *p.values())]
    mod = staff(graph, user)
    assert about in every(lambda token: graph.list_reports(mod, ReportStatus.OPEN, 50, token))
    log = events(storage, d)
    cascade = sorted(k.name for k, _, _, cause in log if cause is Cause.USER_DELETED)
    assert cascade == sorted(
        ["UNFOLLOWED"] * 6 + ["CONNECTION_REMOVED"] + ["CONNECTION_REQUEST_CANCELLED"] * 2 + ["UNBLOCKED"] * 2
    )
    assert log[-1] == (EventKind.USER_DELETED, d, d, Cause.REQUEST)
    assert graph.delete_user(d) == Removed()
    assert graph.delete_user(user()) == Removed()


def test_r4_a_big_account_goes_in_bounded_transactions(storage: Storage, user: Callable[[], str]) -> None:
    graph = Graph(storage, limiter(), Policy(edge_batch=4))
    d = user()
    fans = [user() for _ in range(9)]
    for fan in fans:
        graph.follow(fan, d)
    assert graph.delete_user(d) == Removed(follows=9)
    assert [c.following for c in graph.get_counts(fans)] == [0] * 9
    assert graph.recount() == []


# ------------------------------------------------------------------ stats


def test_stats_count_what_exists_and_what_is_new(empty_storage: Storage, user: Callable[[], str]) -> None:
    graph = Graph(empty_storage, limiter(), Policy())
    a, b, c = user(), user(), user()
    graph.upsert_user(User(a, Role.MEMBER, "", "", 0))
    graph.send_connection_request(a, b, "")
    graph.accept_connection_request(b, a)
    graph.send_connection_request(a, c, "")
    graph.block(c, user(), "")
    graph.report_user(a, c, ReportReason.SPAM, "")
    stats = graph.stats()
    assert stats.total == stats.last_24h
    assert (stats.total.users, stats.total.follows, stats.total.connections, stats.total.pending_requests,
            stats.total.blocks, stats.total.open_reports) == (1, 3, 1, 1, 1, 1)


# -------------------------------------------------- deletions side by side


def tombstone(storage: Storage, who: str) -> None:
    """A deletion started and its job not yet run (left to the runner)."""

    def start(tx: Tx) -> object:
        tx.lock_users((who,))
        return tx.start_deletion(who, 1)

    storage.read_write(start)


def stored_counts(storage: Storage, *users: str) -> list[Counts]:
    found = storage.read_only(lambda tx: tx.counts(list(users)))
    return [found[u].counts if u in found else Counts(u) for u in users]


def test_r4_deletions_in_progress_never_count_each_other_below_zero(storage: Storage, user: Callable[[], str]) -> None:
    """D follows X and blocks P; X and D are being deleted when P is
    promoted. Neither deletion nor the promotion counts a user being
    deleted (their counters stay zero), and every counter ends exact."""
    graph = Graph(storage, limiter(), Policy())
    d, x, p = user(), user(), user()
    for who in (d, x, p):
        graph.upsert_user(User(who, Role.MEMBER, "", "", 0))
    graph.follow(d, x)
    graph.block(d, p, "")
    tombstone(storage, x)
    tombstone(storage, d)
    graph.upsert_user(User(p, Role.MODERATOR, "", "", 0))  # leaves d's block to d's deletion
    assert stored_counts(storage, d) == [Counts(d)]
    assert graph.jobs.run(d, JobKind.DELETE, None)
    assert stored_counts(storage, x) == [Counts(x)]
    assert graph.jobs.run(x, JobKind.DELETE, None)
    assert graph.recount() == []
    assert storage.read_only(lambda tx: tx.pending_jobs()) == []


def test_r4_a_batch_that_found_a_full_batch_is_not_the_last_even_when_another_job_took_some(
    storage: Storage, user: Callable[[], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Between a batch's picks and its DELETEs another job (here: X's
    deletion) removes one of the picked edges. The batch removes fewer than
    its size, yet edges are left: the deletion goes on until none is."""
    graph = Graph(storage, limiter(), Policy(edge_batch=2))
    d, x = user(), user()
    fans = [user() for _ in range(3)]
    for who in (d, x, *fans):
        graph.upsert_user(User(who, Role.MEMBER, "", "", 0))
    graph.follow(d, x)
    for fan in fans:
        graph.follow(fan, d)
    tombstone(storage, d)
    removed = SqlTx._removed
    taken: list[bool] = []

    def racing_removed(tx: SqlTx, statement: Statement, user_id: str, ids: list[str]) -> list[str]:
        if x in ids and not taken:
            taken.append(tx.delete_follow(d, x))  # what X's deletion would remove meanwhile
        return removed(tx, statement, user_id, ids)

    monkeypatch.setattr(SqlTx, "_removed", racing_removed)
    graph.jobs.run(d, JobKind.DELETE, None)
    assert taken == [True]
    assert [c.following for c in stored_counts(storage, *fans)] == [0, 0, 0]
    assert storage.read_only(lambda tx: tx.pending_jobs()) == []
    assert all(not graph.get_relationship(fan, d, Consistency(fully_consistent=True)).following for fan in fans)
    monkeypatch.undo()
    assert graph.recount() == []
