"""Enum fields: unspecified and unknown values."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from socialgraph.v1 import admin_pb2 as apb
from socialgraph.v1 import social_graph_pb2 as pb

from .calls import (
    Ctx,
    _nothing,
    _upsert,
    _upsert_seed,
    refused,
)


@dataclass(frozen=True)
class Enum:
    name: str
    field: str
    valid: tuple[int, ...]
    send: Callable[[Ctx, Any], object]  # the number goes into whichever enum field
    write: bool
    seed: Callable[[Ctx], object] = _nothing


ENUMS = [
    Enum(
        "ReportUser.reason",
        "reason",
        tuple(range(1, 7)),
        lambda x, n: x.client.graph.ReportUser(
            pb.ReportUserRequest(
                reporter_id=x.a, reported_id=x.b, reason=n, details="d"
            )
        ),
        True,
    ),
    Enum(
        "UpsertUser.user.role",
        "user.role",
        (1, 2, 3),
        lambda x, n: _upsert(x, x.a, role=n, display_name="New"),
        True,
        _upsert_seed,
    ),
    Enum(
        "ListReports.status",
        "status",
        (1, 2, 3),
        lambda x, n: x.client.admin.ListReports(
            apb.ListReportsRequest(moderator_id=x.mod, status=n)
        ),
        False,
    ),
    Enum(
        "ResolveReport.resolution",
        "resolution",
        (1, 2),
        lambda x, n: x.client.admin.ResolveReport(
            apb.ResolveReportRequest(
                report_id=x.report, moderator_id=x.mod, resolution=n, note="n"
            )
        ),
        True,
        lambda x: x.make_report(),
    ),
]
ENUM_PARAMS = [pytest.param(e, id=e.name) for e in ENUMS]


@pytest.mark.parametrize("which", ["unspecified", "one-past-last", "99", "negative"])
@pytest.mark.parametrize("enum", ENUM_PARAMS)
def test_unspecified_or_unknown_enum_is_invalid_enum(ctx, enum, which):
    enum.seed(ctx)
    number = {
        "unspecified": 0,
        "one-past-last": max(enum.valid) + 1,
        "99": 99,
        "negative": -1,
    }[which]
    refused(
        ctx,
        "INVALID_ENUM",
        lambda: enum.send(ctx, number),
        field=enum.field,
        write=enum.write,
    )


@pytest.mark.parametrize("enum", ENUM_PARAMS)
def test_every_defined_enum_value_is_accepted(ctx, enum):
    enum.seed(ctx)
    for number in enum.valid:
        enum.send(ctx, number)
