"""AdminService (R1-R4, B3 through UpsertUser, GetStats) through the API, on every backend."""

from __future__ import annotations

import time
import uuid

import pytest
from grpc import StatusCode

from ratelimit import InProcessLimiter, parse_windows
from server.rules import Graph, Policy
from socialgraph.v1 import admin_pb2 as apb
from socialgraph.v1 import common_pb2
from socialgraph.v1 import social_graph_pb2 as pb
from storage.types import Role, User

from .support import ZERO, counters, new_user, raises, zero

MEMBER, MODERATOR, ADMIN = common_pb2.ROLE_MEMBER, common_pb2.ROLE_MODERATOR, common_pb2.ROLE_ADMIN
OPEN, DISMISSED, ACTIONED = (
    common_pb2.REPORT_STATUS_OPEN,
    common_pb2.REPORT_STATUS_DISMISSED,
    common_pb2.REPORT_STATUS_ACTIONED,
)
RESOLVE_DISMISSED, RESOLVE_ACTIONED = apb.REPORT_RESOLUTION_DISMISSED, apb.REPORT_RESOLUTION_ACTIONED
REASONS = [
    common_pb2.REPORT_REASON_SPAM,
    common_pb2.REPORT_REASON_HARASSMENT,
    common_pb2.REPORT_REASON_HATE,
    common_pb2.REPORT_REASON_INAPPROPRIATE_CONTENT,
    common_pb2.REPORT_REASON_IMPERSONATION,
    common_pb2.REPORT_REASON_OTHER,
]
TOTALS = ("users", "follows", "connections", "pending_requests", "blocks", "open_reports")


# ---------------------------------------------------------------- helpers


def get_user(client, user_id: str):
    return client.admin.GetUser(apb.GetUserRequest(user_id=user_id)).user


def delete_user(client, user_id: str) -> apb.DeleteUserResponse:
    return client.admin.DeleteUser(apb.DeleteUserRequest(user_id=user_id))


def removed(response: apb.DeleteUserResponse) -> tuple[int, int, int, int]:
    return (
        response.removed_follows,
        response.removed_connections,
        response.removed_requests,
        response.removed_blocks,
    )




def report(client, reporter: str, reported: str, reason=common_pb2.REPORT_REASON_SPAM, details: str = ""):
    return client.graph.ReportUser(
        pb.ReportUserRequest(reporter_id=reporter, reported_id=reported, reason=reason, details=details)
    ).report


def list_reports(client, moderator: str, status=OPEN, page_size: int = 0, page_token: str = ""):
    return client.admin.ListReports(
        apb.ListReportsRequest(
            moderator_id=moderator, status=status, page_size=page_size, page_token=page_token
        )
    )


def all_reports(client, moderator: str, status=OPEN, page_size: int = 50) -> list:
    """Every report with ``status``, walking all pages (the database is shared)."""
    found, token = [], ""
    for _ in range(10_000):
        page = list_reports(client, moderator, status, page_size, token)
        found.extend(page.reports)
        token = page.next_page_token
        if not token:
            return found
    raise AssertionError("ListReports never ended")


def report_ids(client, moderator: str, status=OPEN, page_size: int = 50) -> list[str]:
    return [r.report_id for r in all_reports(client, moderator, status, page_size)]


def resolve(client, report_id: str, moderator: str, resolution=RESOLVE_DISMISSED, note: str = ""):
    return client.admin.ResolveReport(
        apb.ResolveReportRequest(report_id=report_id, moderator_id=moderator, resolution=resolution, note=note)
    ).report


def staff(client, user, role=MODERATOR) -> str:
    moderator = user()
    client.upsert(moderator, role=role)
    return moderator


def is_uuid7(value: str) -> bool:
    parsed = uuid.UUID(value)
    return parsed.version == 7 and str(parsed) == value


def totals(client) -> dict:
    stats = client.stats()
    return {
        "total": {name: getattr(stats, name) for name in TOTALS},
        "last_24h": {name: getattr(stats.created_last_24h, name) for name in TOTALS},
    }


def difference(before: dict, after: dict) -> dict:
    return {
        scope: {name: after[scope][name] - before[scope][name] for name in TOTALS} for scope in before
    }


def changes(**expected) -> dict:
    delta = {name: expected.get(name, 0) for name in TOTALS}
    return {"total": delta, "last_24h": dict(delta)}


# ---------------------------------------------------------------- UpsertUser / GetUser


def test_upsert_stores_role_name_and_avatar(client, user):
    a = user()
    stored = client.upsert(a, role=MODERATOR, display_name="Ada", avatar_url="https://example.test/ada.png")
    assert stored.user_id == a
    assert stored.role == MODERATOR
    assert (stored.display_name, stored.avatar_url) == ("Ada", "https://example.test/ada.png")
    assert stored.created_at.ToMicroseconds() > 0


def test_upsert_created_at_is_now(client, user):
    before = time.time()
    stored = client.upsert(user(), role=MEMBER)
    assert before - 60 <= stored.created_at.ToMicroseconds() / 1e6 <= time.time() + 60


def test_get_user_returns_the_stored_user(client, user):
    a = user()
    stored = client.upsert(a, role=ADMIN, display_name="Root", avatar_url="https://example.test/r.png")
    assert get_user(client, a) == stored


def test_second_upsert_replaces_fields_and_keeps_created_at(client, user):
    a = user()
    first = client.upsert(a, role=MEMBER, display_name="Old", avatar_url="https://example.test/old.png")
    second = client.upsert(a, role=MODERATOR, display_name="New", avatar_url="")
    assert (second.role, second.display_name, second.avatar_url) == (MODERATOR, "New", "")
    assert second.created_at == first.created_at
    assert get_user(client, a) == second


def test_upsert_ignores_created_at_in_the_request(client, user):
    a = user()
    first = client.upsert(a, role=MEMBER)
    request_user = common_pb2.User(user_id=a, role=MEMBER, display_name="x")
    request_user.created_at.FromSeconds(1)
    stored = client.admin.UpsertUser(apb.UpsertUserRequest(user=request_user)).user
    assert stored.created_at == first.created_at


def test_upsert_accepts_any_case_and_returns_canonical_id(client, user):
    a = user()
    stored = client.upsert(a.upper(), role=MEMBER, display_name="Case")
    assert stored.user_id == a
    assert get_user(client, a.upper()).display_name == "Case"


def test_upsert_refuses_unspecified_role(client, user):
    with raises(StatusCode.INVALID_ARGUMENT, "INVALID_ENUM"):
        client.upsert(user(), role=common_pb2.ROLE_UNSPECIFIED)


def test_upsert_refuses_missing_user(client):
    with raises(StatusCode.INVALID_ARGUMENT, "MISSING_FIELD"):
        client.admin.UpsertUser(apb.UpsertUserRequest())


def test_upsert_refuses_invalid_user_id(client):
    with raises(StatusCode.INVALID_ARGUMENT, "INVALID_USER_ID"):
        client.upsert("not-a-uuid", role=MEMBER)


def test_upsert_refuses_too_long_display_name(client, user):
    a = user()
    client.upsert(a, role=MEMBER, display_name="n" * 200)
    with raises(StatusCode.INVALID_ARGUMENT, "FIELD_TOO_LONG"):
        client.upsert(a, role=MEMBER, display_name="n" * 201)
    assert get_user(client, a).display_name == "n" * 200


def test_get_unknown_user_is_not_found(client, user):
    with raises(StatusCode.NOT_FOUND, "USER_NOT_FOUND"):
        get_user(client, user())


def test_get_user_who_only_takes_part_in_the_graph_is_not_found(client, user):
    a, b = user(), user()
    client.follow(a, b)
    with raises(StatusCode.NOT_FOUND, "USER_NOT_FOUND"):
        get_user(client, a)


def test_get_user_with_invalid_id(client):
    with raises(StatusCode.INVALID_ARGUMENT, "INVALID_USER_ID"):
        get_user(client, "nope")


# ---------------------------------------------------------------- DeleteUser (R4)


def _user_with_everything(client, user) -> dict:
    """``d`` follows a, is followed by b, is connected to c, has a pending
    request to e and one from f, blocks g and is blocked by h."""
    people = {name: user() for name in "dabcefgh"}
    d = people["d"]
    client.follow(d, people["a"])
    client.follow(people["b"], d)
    client.connect(d, people["c"])  # 1 connection, 2 follows
    client.send(d, people["e"])  # 1 request, follow d -> e
    client.send(people["f"], d)  # 1 request, follow f -> d
    client.block(d, people["g"])
    client.block(people["h"], d)
    return people


def test_delete_user_returns_removed_counts(client, user):
    people = _user_with_everything(client, user)
    response = delete_user(client, people["d"])
    # follows: d->a, b->d, d->c, c->d, d->e, f->d
    assert removed(response) == (6, 1, 2, 2)


def test_delete_user_zeroes_their_counts(client, user):
    people = _user_with_everything(client, user)
    d = people["d"]
    assert counters(client.counts(d)[0]) == {
        "followers": 3,
        "following": 3,
        "connections": 1,
        "incoming": 1,
        "outgoing": 1,
        "blocked": 1,
    }
    delete_user(client, d)
    assert counters(client.counts(d)[0]) == ZERO


def test_delete_user_drops_the_other_users_counters(client, user):
    people = _user_with_everything(client, user)
    delete_user(client, people["d"])
    a, b, c, e, f, g, h = (people[n] for n in "abcefgh")
    counts = dict(zip("abcefgh", client.counts(a, b, c, e, f, g, h), strict=False))
    for name, count in counts.items():
        assert counters(count) == ZERO, name


def test_delete_user_removes_every_relationship(client, user):
    people = _user_with_everything(client, user)
    d = people["d"]
    delete_user(client, d)
    for name in "abcefgh":
        rel = client.relationship(people[name], d)
        assert not (
            rel.following
            or rel.followed_by
            or rel.connected
            or rel.outgoing_request_pending
            or rel.incoming_request_pending
            or rel.blocking
            or rel.blocked_by
        ), name
        assert rel.can_interact, name


def test_delete_user_removes_them_from_other_users_lists(client, user):
    people = _user_with_everything(client, user)
    d = people["d"]
    delete_user(client, d)
    graph = client.graph
    assert list(graph.ListFollowers(pb.ListFollowersRequest(user_id=people["a"])).users) == []
    assert list(graph.ListFollowing(pb.ListFollowingRequest(user_id=people["b"])).users) == []
    assert list(graph.ListConnections(pb.ListConnectionsRequest(user_id=people["c"])).users) == []
    incoming = graph.ListIncomingConnectionRequests(pb.ListIncomingConnectionRequestsRequest(user_id=people["e"]))
    outgoing = graph.ListOutgoingConnectionRequests(pb.ListOutgoingConnectionRequestsRequest(user_id=people["f"]))
    assert list(incoming.requests) == [] and list(outgoing.requests) == []
    assert list(graph.ListBlocked(pb.ListBlockedRequest(user_id=people["h"])).blocks) == []


def test_delete_user_removes_their_own_lists(client, user):
    people = _user_with_everything(client, user)
    d = people["d"]
    delete_user(client, d)
    graph = client.graph
    assert list(graph.ListFollowers(pb.ListFollowersRequest(user_id=d)).users) == []
    assert list(graph.ListFollowing(pb.ListFollowingRequest(user_id=d)).users) == []
    assert list(graph.ListConnections(pb.ListConnectionsRequest(user_id=d)).users) == []
    assert list(graph.ListBlocked(pb.ListBlockedRequest(user_id=d)).blocks) == []


def test_delete_user_leaves_unrelated_edges_alone(client, user):
    d, a, b = user(), user(), user()
    client.connect(a, b)
    client.follow(d, a)
    delete_user(client, d)
    [ca, cb] = client.counts(a, b)
    assert counters(ca) == zero(followers=1, following=1, connections=1)
    assert counters(cb) == zero(followers=1, following=1, connections=1)


def test_delete_user_removes_the_user_record(client, user):
    d = user()
    client.upsert(d, role=MEMBER, display_name="Gone")
    delete_user(client, d)
    with raises(StatusCode.NOT_FOUND, "USER_NOT_FOUND"):
        get_user(client, d)


def test_delete_user_keeps_reports_about_them(client, user):
    moderator = staff(client, user)
    d, reporter = user(), user()
    made = report(client, reporter, d, details="about d")
    made_by_d = report(client, d, reporter, details="by d")
    delete_user(client, d)
    open_reports = {r.report_id: r for r in all_reports(client, moderator)}
    assert made.report_id in open_reports
    assert open_reports[made.report_id] == made
    assert made_by_d.report_id in open_reports


def test_deleting_again_returns_zeros(client, user):
    people = _user_with_everything(client, user)
    delete_user(client, people["d"])
    assert removed(delete_user(client, people["d"])) == (0, 0, 0, 0)


def test_deleting_an_unknown_user_returns_zeros(client, user):
    assert removed(delete_user(client, user())) == (0, 0, 0, 0)


def test_deleted_user_can_take_part_again(client, user):
    d, a = user(), user()
    client.block(a, d)
    delete_user(client, d)
    assert client.follow(d, a).created
    [cd, ca] = client.counts(d, a)
    assert counters(cd) == zero(following=1)
    assert counters(ca) == zero(followers=1)


def test_deleted_staff_can_be_blocked_again(client, user):
    d, a = user(), user()
    client.upsert(d, role=MODERATOR)
    delete_user(client, d)
    assert client.block(a, d).created


# ---------------------------------------------------------------- ReportUser (R1)


@pytest.mark.parametrize("reason", REASONS, ids=common_pb2.ReportReason.Name)
def test_report_accepts_each_reason(client, user, reason):
    reporter, reported = user(), user()
    made = report(client, reporter, reported, reason=reason, details="what happened")
    assert made.reason == reason
    assert (made.reporter_id, made.reported_id) == (reporter, reported)
    assert made.details == "what happened"
    assert made.status == OPEN


def test_report_is_open_with_uuid7_id(client, user):
    made = report(client, user(), user())
    assert is_uuid7(made.report_id)
    assert made.status == OPEN
    assert made.created_at.ToMicroseconds() > 0
    assert made.resolved_by == "" and made.note == ""
    assert not made.HasField("resolved_at")


def test_report_details_are_optional(client, user):
    assert report(client, user(), user()).details == ""


def test_report_details_up_to_2000_characters(client, user):
    details = "d" * 2000
    assert report(client, user(), user(), details=details).details == details
    with raises(StatusCode.INVALID_ARGUMENT, "FIELD_TOO_LONG"):
        report(client, user(), user(), details="d" * 2001)


def test_report_returns_canonical_ids(client, user):
    reporter, reported = user(), user()
    made = report(client, reporter.upper(), reported.upper())
    assert (made.reporter_id, made.reported_id) == (reporter, reported)


def test_reporting_oneself_is_invalid(client, user):
    a = user()
    with raises(StatusCode.INVALID_ARGUMENT, "SELF_RELATIONSHIP"):
        report(client, a, a)
    with raises(StatusCode.INVALID_ARGUMENT, "SELF_RELATIONSHIP"):
        report(client, a, a.upper())


def test_report_refuses_unspecified_reason(client, user):
    with raises(StatusCode.INVALID_ARGUMENT, "INVALID_ENUM"):
        report(client, user(), user(), reason=common_pb2.REPORT_REASON_UNSPECIFIED)


def test_report_ids_are_distinct(client, user):
    reporter, reported = user(), user()
    first, second = report(client, reporter, reported), report(client, reporter, reported)
    assert first.report_id != second.report_id


# ---------------------------------------------------------------- ListReports / ResolveReport (R2)


def test_member_cannot_list_reports(client, user):
    member = user()
    client.upsert(member, role=MEMBER)
    with raises(StatusCode.PERMISSION_DENIED, "NOT_A_MODERATOR"):
        list_reports(client, member)


def test_unregistered_user_cannot_list_reports(client, user):
    with raises(StatusCode.PERMISSION_DENIED, "NOT_A_MODERATOR"):
        list_reports(client, user())


def test_member_cannot_resolve_a_report(client, user):
    member = user()
    client.upsert(member, role=MEMBER)
    made = report(client, user(), user())
    with raises(StatusCode.PERMISSION_DENIED, "NOT_A_MODERATOR"):
        resolve(client, made.report_id, member)
    with raises(StatusCode.PERMISSION_DENIED, "NOT_A_MODERATOR"):
        resolve(client, made.report_id, user())
    moderator = staff(client, user)
    assert made.report_id in report_ids(client, moderator, OPEN)


def test_demoted_moderator_cannot_list_reports(client, user):
    moderator = staff(client, user)
    list_reports(client, moderator)
    client.upsert(moderator, role=MEMBER)
    with raises(StatusCode.PERMISSION_DENIED, "NOT_A_MODERATOR"):
        list_reports(client, moderator)


@pytest.mark.parametrize("role", [MODERATOR, ADMIN], ids=["moderator", "admin"])
def test_staff_list_open_reports_newest_first(client, user, role):
    lister = staff(client, user, role)
    made = [report(client, user(), user(), details=f"#{i}") for i in range(3)]
    wanted = {r.report_id for r in made}
    listed = [r for r in all_reports(client, lister, OPEN, page_size=2) if r.report_id in wanted]
    assert [r.report_id for r in listed] == [r.report_id for r in made[::-1]]
    assert listed == made[::-1]


def test_open_report_list_is_sorted_newest_first(client, user):
    moderator = staff(client, user)
    report(client, user(), user())
    listed = all_reports(client, moderator, OPEN)
    times = [r.created_at.ToMicroseconds() for r in listed]
    assert times == sorted(times, reverse=True)
    assert all(r.status == OPEN for r in listed)


def test_report_list_pages_of_one_walk_every_report_once(client, user):
    moderator = staff(client, user)
    made = [report(client, user(), user()) for _ in range(3)]
    everything = report_ids(client, moderator, OPEN, page_size=1000)
    walked = report_ids(client, moderator, OPEN, page_size=1)
    assert walked == everything
    assert len(set(walked)) == len(walked)
    assert {r.report_id for r in made} <= set(walked)


def test_list_reports_refuses_unspecified_status(client, user):
    moderator = staff(client, user)
    with raises(StatusCode.INVALID_ARGUMENT, "INVALID_ENUM"):
        list_reports(client, moderator, status=common_pb2.REPORT_STATUS_UNSPECIFIED)


def test_moderator_dismisses_a_report_with_a_note(client, user):
    moderator = staff(client, user)
    made = report(client, user(), user(), details="rude")
    resolved = resolve(client, made.report_id, moderator, RESOLVE_DISMISSED, note="nothing wrong")
    assert resolved.report_id == made.report_id
    assert resolved.status == DISMISSED
    assert resolved.resolved_by == moderator
    assert resolved.note == "nothing wrong"
    assert resolved.HasField("resolved_at")
    assert resolved.resolved_at.ToMicroseconds() >= made.created_at.ToMicroseconds()
    assert (resolved.reporter_id, resolved.reported_id, resolved.reason, resolved.details) == (
        made.reporter_id,
        made.reported_id,
        made.reason,
        made.details,
    )
    assert resolved.created_at == made.created_at


def test_admin_actions_a_report_with_a_note(client, user):
    admin = staff(client, user, ADMIN)
    made = report(client, user(), user(), reason=common_pb2.REPORT_REASON_HATE)
    resolved = resolve(client, made.report_id, admin, RESOLVE_ACTIONED, note="account suspended")
    assert (resolved.status, resolved.resolved_by, resolved.note) == (ACTIONED, admin, "account suspended")
    assert resolved.HasField("resolved_at")


def test_dismissed_report_moves_from_open_to_dismissed_list(client, user):
    moderator = staff(client, user)
    made = report(client, user(), user())
    assert made.report_id in report_ids(client, moderator, OPEN)
    resolved = resolve(client, made.report_id, moderator, RESOLVE_DISMISSED, note="fine")
    assert made.report_id not in report_ids(client, moderator, OPEN)
    dismissed = {r.report_id: r for r in all_reports(client, moderator, DISMISSED)}
    assert dismissed[made.report_id] == resolved
    assert made.report_id not in report_ids(client, moderator, ACTIONED)


def test_actioned_report_moves_from_open_to_actioned_list(client, user):
    moderator = staff(client, user)
    made = report(client, user(), user())
    resolved = resolve(client, made.report_id, moderator, RESOLVE_ACTIONED, note="removed the post")
    assert made.report_id not in report_ids(client, moderator, OPEN)
    actioned = {r.report_id: r for r in all_reports(client, moderator, ACTIONED)}
    assert actioned[made.report_id] == resolved
    assert made.report_id not in report_ids(client, moderator, DISMISSED)


def test_resolving_again_the_same_way_returns_it_unchanged(client, user):
    moderator, other = staff(client, user), staff(client, user, ADMIN)
    made = report(client, user(), user())
    first = resolve(client, made.report_id, moderator, RESOLVE_DISMISSED, note="first note")
    again = resolve(client, made.report_id, moderator, RESOLVE_DISMISSED, note="first note")
    assert again == first
    assert again.resolved_at == first.resolved_at
    by_other = resolve(client, made.report_id, other, RESOLVE_DISMISSED, note="another note")
    assert by_other == first


def test_resolving_with_another_resolution_replaces_it(client, user):
    moderator, admin = staff(client, user), staff(client, user, ADMIN)
    made = report(client, user(), user())
    resolve(client, made.report_id, moderator, RESOLVE_DISMISSED, note="looks fine")
    changed = resolve(client, made.report_id, admin, RESOLVE_ACTIONED, note="on second look")
    assert (changed.status, changed.resolved_by, changed.note) == (ACTIONED, admin, "on second look")
    assert made.report_id in report_ids(client, moderator, ACTIONED)
    assert made.report_id not in report_ids(client, moderator, DISMISSED)


def test_resolve_unknown_report_is_not_found(client, user):
    moderator = staff(client, user)
    with raises(StatusCode.NOT_FOUND, "REPORT_NOT_FOUND"):
        resolve(client, str(uuid.uuid4()), moderator)


def test_resolve_malformed_report_id_is_not_found(client, user):
    moderator = staff(client, user)
    with raises(StatusCode.NOT_FOUND, "REPORT_NOT_FOUND"):
        resolve(client, "not-a-report-id", moderator)


def test_resolve_accepts_report_id_in_upper_case(client, user):
    moderator = staff(client, user)
    made = report(client, user(), user())
    resolved = resolve(client, made.report_id.upper(), moderator, RESOLVE_ACTIONED)
    assert resolved.report_id == made.report_id
    assert resolved.status == ACTIONED


def test_resolve_refuses_unspecified_resolution(client, user):
    moderator = staff(client, user)
    made = report(client, user(), user())
    with raises(StatusCode.INVALID_ARGUMENT, "INVALID_ENUM"):
        resolve(client, made.report_id, moderator, apb.REPORT_RESOLUTION_UNSPECIFIED)


def test_resolve_note_up_to_2000_characters(client, user):
    moderator = staff(client, user)
    made = report(client, user(), user())
    with raises(StatusCode.INVALID_ARGUMENT, "FIELD_TOO_LONG"):
        resolve(client, made.report_id, moderator, RESOLVE_DISMISSED, note="n" * 2001)
    assert made.report_id in report_ids(client, moderator, OPEN)
    assert resolve(client, made.report_id, moderator, RESOLVE_DISMISSED, note="n" * 2000).note == "n" * 2000


# ---------------------------------------------------------------- GetStats


def test_stats_count_a_follow(client, user):
    before = totals(client)
    client.follow(user(), user())
    assert difference(before, totals(client)) == changes(follows=1)


def test_stats_count_a_connection_and_its_follows(client, user):
    before = totals(client)
    client.connect(user(), user())
    assert difference(before, totals(client)) == changes(connections=1, follows=2)


def test_stats_count_a_pending_request_and_its_follow(client, user):
    before = totals(client)
    client.send(user(), user())
    assert difference(before, totals(client)) == changes(pending_requests=1, follows=1)


def test_stats_count_a_block(client, user):
    before = totals(client)
    client.block(user(), user())
    assert difference(before, totals(client)) == changes(blocks=1)


def test_stats_count_an_open_report(client, user):
    before = totals(client)
    report(client, user(), user())
    assert difference(before, totals(client)) == changes(open_reports=1)


def test_stats_count_a_registered_user(client, user):
    before = totals(client)
    client.upsert(user(), role=MEMBER)
    assert difference(before, totals(client)) == changes(users=1)


def test_stats_do_not_count_a_second_upsert(client, user):
    a = user()
    client.upsert(a, role=MEMBER)
    before = totals(client)
    client.upsert(a, role=MEMBER, display_name="again")
    assert difference(before, totals(client)) == changes()


def test_stats_count_everything_created_together(client, user):
    before = totals(client)
    client.follow(user(), user())
    client.connect(user(), user())
    client.send(user(), user())
    client.block(user(), user())
    report(client, user(), user())
    client.upsert(user(), role=MEMBER)
    assert difference(before, totals(client)) == changes(
        users=1, follows=4, connections=1, pending_requests=1, blocks=1, open_reports=1
    )


def test_stats_resolving_a_report_closes_it(client, user):
    moderator = staff(client, user)
    made = report(client, user(), user())
    before = totals(client)
    resolve(client, made.report_id, moderator, RESOLVE_ACTIONED)
    assert difference(before, totals(client)) == changes(open_reports=-1)


def test_stats_block_cascade_removes_follows_and_connection(client, user):
    a, b = user(), user()
    client.connect(a, b)
    before = totals(client)
    client.block(a, b)
    assert difference(before, totals(client)) == changes(blocks=1, follows=-2, connections=-1)


def test_stats_delete_user(client, user):
    people = _user_with_everything(client, user)
    client.upsert(people["d"], role=MEMBER)
    before = totals(client)
    delete_user(client, people["d"])
    assert difference(before, totals(client)) == changes(
        users=-1, follows=-6, connections=-1, pending_requests=-2, blocks=-2
    )


def test_stats_last_24h_never_exceed_totals(client, user):
    client.follow(user(), user())
    stats = totals(client)
    for name in TOTALS:
        assert stats["last_24h"][name] <= stats["total"][name], name


class CountingStorage:
    """``storage`` that counts write transactions."""

    def __init__(self, storage) -> None:
        self._storage = storage
        self.writes = 0

    def read_write(self, fn):
        self.writes += 1
        return self._storage.read_write(fn)

    def __getattr__(self, name):
        return getattr(self._storage, name)


BIG = 600
BATCH = 50


def test_deleting_a_big_account_runs_in_bounded_transactions_and_keeps_counters_exact(storage):
    """A user with 600 followers, 600 followees, connections, requests and
    blocks both ways, deleted 50 edges of a kind per transaction: every
    edge goes, every other user's counters are right, recount finds nothing."""
    counting = CountingStorage(storage)
    limiter = InProcessLimiter(parse_windows("100000/1h"))
    graph = Graph(counting, limiter, Policy(connection_limit=1000, edge_batch=BATCH))
    big = new_user()
    fans, idols = [new_user() for _ in range(BIG)], [new_user() for _ in range(BIG)]
    friends = [new_user() for _ in range(60)]
    for fan in fans:
        graph.follow(fan, big)
    for idol in idols:
        graph.follow(big, idol)
    for friend in friends[:30]:
        graph.send_connection_request(big, friend, "")
        graph.accept_connection_request(friend, big)
    for friend in friends[30:45]:
        graph.send_connection_request(friend, big, "")
    for friend in friends[45:]:
        graph.block(friend, big, "")
    for _fan in fans[:70]:
        graph.block(big, new_user(), "")
    before = counting.writes
    removed = graph.delete_user(big)
    assert removed.follows == 2 * BIG + 2 * 30 + 15  # with the auto-follows of connections and requests
    assert (removed.connections, removed.requests, removed.blocks) == (30, 15, 85)
    assert counting.writes - before >= BIG // BATCH
    assert {c.following for c in graph.get_counts(fans)} == {0}
    assert {c.followers for c in graph.get_counts(idols)} == {0}
    assert {(c.connections, c.followers, c.following) for c in graph.get_counts(friends[:30])} == {(0, 0, 0)}
    assert {(c.outgoing_requests, c.following) for c in graph.get_counts(friends[30:45])} == {(0, 0)}
    assert {c.blocked for c in graph.get_counts(friends[45:])} == {0}
    assert graph.recount() == []
    assert graph.get_counts([big])[0].followers == 0


def test_promoting_a_user_many_block_removes_every_block_in_batches(storage):
    counting = CountingStorage(storage)
    graph = Graph(counting, InProcessLimiter(parse_windows("1000/1h")), Policy(edge_batch=BATCH))
    target, blockers = new_user(), [new_user() for _ in range(BIG)]
    graph.upsert_user(User(target, Role.MEMBER, "", "", 0))
    for blocker in blockers:
        graph.block(blocker, target, "")
    before = counting.writes
    graph.upsert_user(User(target, Role.MODERATOR, "", "", 0))
    assert counting.writes - before >= BIG // BATCH
    assert all(graph.get_counts([b])[0].blocked == 0 for b in blockers[:20])
    assert not any(graph.get_relationship(b, target).blocking for b in blockers[:20])
    assert graph.recount() == []
