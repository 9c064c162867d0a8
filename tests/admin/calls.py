"""Helpers shared by the tests in this package."""

from __future__ import annotations

import uuid

from socialgraph.v1 import admin_pb2 as apb
from socialgraph.v1 import common_pb2
from socialgraph.v1 import social_graph_pb2 as pb

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

