"""socialgraph.v1.AdminService."""

from __future__ import annotations

import enum

import grpc

from socialgraph.v1 import admin_pb2 as pb
from socialgraph.v1 import admin_pb2_grpc as pb_grpc
from storage.types import ReportStatus, Role, Totals, User

from .. import convert
from .. import validate as v
from ..errors import translate_errors
from ..rules import Graph, InvalidArgument, NotFound, Reason
from ..rules.paging import page_size


class _Resolution(enum.IntEnum):
    """ReportResolution, and the status a report resolved so takes."""

    DISMISSED = pb.REPORT_RESOLUTION_DISMISSED
    ACTIONED = pb.REPORT_RESOLUTION_ACTIONED

    @property
    def status(self) -> ReportStatus:
        return ReportStatus[self.name]


@translate_errors
class AdminServicer(pb_grpc.AdminServiceServicer):
    def __init__(self, graph: Graph) -> None:
        self._graph = graph

    def UpsertUser(self, request: pb.UpsertUserRequest, context: grpc.ServicerContext) -> pb.UpsertUserResponse:
        if not request.HasField("user"):
            raise InvalidArgument(Reason.MISSING_FIELD, "user", "is required")
        user = request.user
        stored = self._graph.upsert_user(
            User(
                user_id=v.user_id(user.user_id, "user.user_id"),
                role=v.enum_value(user.role, "user.role", Role),
                display_name=v.display_name(user.display_name, "user.display_name", self._graph.policy),
                avatar_url=v.avatar_url(user.avatar_url, "user.avatar_url", self._graph.policy),
                created_us=0,
            )
        )
        return pb.UpsertUserResponse(user=convert.user(stored), consistency_token=self._graph.consistency_token())

    def GetUser(self, request: pb.GetUserRequest, context: grpc.ServicerContext) -> pb.GetUserResponse:
        user = self._graph.get_user(v.user_id(request.user_id, "user_id"), v.consistency(request.consistency))
        return pb.GetUserResponse(user=convert.user(user))

    def DeleteUser(self, request: pb.DeleteUserRequest, context: grpc.ServicerContext) -> pb.DeleteUserResponse:
        removed = self._graph.delete_user(v.user_id(request.user_id, "user_id"))
        return pb.DeleteUserResponse(
            removed_follows=removed.follows,
            removed_connections=removed.connections,
            removed_requests=removed.requests,
            removed_blocks=removed.blocks,
            consistency_token=self._graph.consistency_token(),
        )

    def ListReports(self, request: pb.ListReportsRequest, context: grpc.ServicerContext) -> pb.ListReportsResponse:
        page = self._graph.list_reports(
            v.user_id(request.moderator_id, "moderator_id"),
            v.enum_value(request.status, "status", ReportStatus),
            page_size(request.page_size),
            request.page_token,
            v.consistency(request.consistency),
        )
        return pb.ListReportsResponse(
            reports=[convert.report(r) for r in page.items], next_page_token=page.next_page_token
        )

    def ResolveReport(
        self, request: pb.ResolveReportRequest, context: grpc.ServicerContext
    ) -> pb.ResolveReportResponse:
        moderator_id = v.user_id(request.moderator_id, "moderator_id")
        resolution = v.enum_value(request.resolution, "resolution", _Resolution)
        note = v.text(request.note, "note", self._graph.policy.note_max)
        report_id = v.record_id(request.report_id, "report_id")
        if report_id is None:
            raise NotFound(Reason.REPORT_NOT_FOUND, "report_id names no report")
        report = self._graph.resolve_report(report_id, moderator_id, resolution.status, note)
        return pb.ResolveReportResponse(
            report=convert.report(report), consistency_token=self._graph.consistency_token()
        )

    def GetStats(self, request: pb.GetStatsRequest, context: grpc.ServicerContext) -> pb.GetStatsResponse:
        stats = self._graph.stats(v.consistency(request.consistency))
        return pb.GetStatsResponse(**_totals(stats.total), created_last_24h=pb.GraphTotals(**_totals(stats.last_24h)))


def _totals(totals: Totals) -> dict[str, int]:
    return {
        "users": totals.users,
        "follows": totals.follows,
        "connections": totals.connections,
        "pending_requests": totals.pending_requests,
        "blocks": totals.blocks,
        "open_reports": totals.open_reports,
    }
