"""GetMutualConnections' limit."""

from __future__ import annotations

import pytest

from socialgraph.v1 import social_graph_pb2 as pb

from ..support import new_user
from .calls import (
    MUTUAL_MAX,
    PAGE_MAX,
    Ctx,
    refused,
)


def _mutual(ctx: Ctx, limit: int):
    return ctx.client.graph.GetMutualConnections(
        pb.GetMutualConnectionsRequest(user_id=ctx.a, other_user_id=ctx.b, limit=limit)
    )


@pytest.mark.parametrize("limit", [-1, MUTUAL_MAX + 1, PAGE_MAX, 2**31 - 1, -(2**31)])
def test_mutual_connections_limit_out_of_range_is_invalid_page_size(ctx, limit):
    refused(
        ctx,
        "INVALID_PAGE_SIZE",
        lambda: _mutual(ctx, limit),
        field="limit",
        write=False,
    )


@pytest.mark.parametrize("limit,shown", [(0, 1), (1, 1), (MUTUAL_MAX, 1)])
def test_mutual_connections_limit_in_range_is_accepted(ctx, limit, shown):
    shared = new_user()
    ctx.client.connect(ctx.a, shared)
    ctx.client.connect(ctx.b, shared)
    response = _mutual(ctx, limit)
    assert (response.count, len(response.users)) == (1, shown)
