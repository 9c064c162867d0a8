"""R2: ListReports and ResolveReport."""

from __future__ import annotations

import uuid

import pytest
from grpc import StatusCode

from socialgraph.v1 import admin_pb2 as apb
from socialgraph.v1 import common_pb2

from ..support import raises
from .calls import (
    ACTIONED,
    ADMIN,
    DISMISSED,
    MEMBER,
    MODERATOR,
    OPEN,
    RESOLVE_ACTIONED,
    RESOLVE_DISMISSED,
    all_reports,
    list_reports,
    report,
    report_ids,
    resolve,
    staff,
)


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
