"""R1: ReportUser."""

from __future__ import annotations

import pytest
from grpc import StatusCode

from socialgraph.v1 import common_pb2

from ..support import raises
from .calls import (
    OPEN,
    REASONS,
    is_uuid7,
    report,
)


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
