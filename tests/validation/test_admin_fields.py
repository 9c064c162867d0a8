"""AdminService specifics: missing users and report ids."""

from __future__ import annotations

import pytest
from grpc import StatusCode

from socialgraph.v1 import admin_pb2 as apb
from socialgraph.v1 import common_pb2 as cpb

from .calls import (
    MANGLES,
    _upsert_seed,
    refused,
)


def test_upsert_without_user_is_missing_field(ctx):
    _upsert_seed(ctx)
    refused(
        ctx,
        "MISSING_FIELD",
        lambda: ctx.client.admin.UpsertUser(apb.UpsertUserRequest()),
        field="user",
        write=True,
    )


def test_upsert_with_empty_user_is_missing_field(ctx):
    refused(
        ctx,
        "MISSING_FIELD",
        lambda: ctx.client.admin.UpsertUser(apb.UpsertUserRequest(user=cpb.User())),
        field="user.user_id",
        write=True,
    )


def test_resolve_without_report_id_is_missing_field(ctx):
    ctx.make_report()
    refused(
        ctx,
        "MISSING_FIELD",
        lambda: ctx.client.admin.ResolveReport(
            apb.ResolveReportRequest(
                moderator_id=ctx.mod, resolution=apb.REPORT_RESOLUTION_ACTIONED
            )
        ),
        field="report_id",
        write=True,
    )


@pytest.mark.parametrize("mangle", MANGLES)
def test_resolve_malformed_report_id_names_no_report(ctx, mangle):
    """A malformed report id can name no report: NOT_FOUND, and nothing changes
    (in particular the real report it was made from stays open)."""
    report = ctx.make_report()
    refused(
        ctx,
        "REPORT_NOT_FOUND",
        lambda: ctx.client.admin.ResolveReport(
            apb.ResolveReportRequest(
                report_id=mangle(report),
                moderator_id=ctx.mod,
                resolution=apb.REPORT_RESOLUTION_ACTIONED,
            )
        ),
        code=StatusCode.NOT_FOUND,
        write=True,
    )
