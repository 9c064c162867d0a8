"""Relations of a user with themself."""

from __future__ import annotations

import pytest

from socialgraph.v1 import social_graph_pb2 as pb

from .calls import (
    PAIRS,
    USER_LISTS,
    _follow_both,
    _list,
    refused,
)

SELF_FORMS = [
    pytest.param(lambda u: (u, u), id="same"),
    pytest.param(lambda u: (u, u.upper()), id="second-upper"),
    pytest.param(lambda u: (u.upper(), u), id="first-upper"),
    pytest.param(lambda u: (u, u[:8].upper() + u[8:]), id="mixed-case"),
]


@pytest.mark.parametrize("form", SELF_FORMS)
@pytest.mark.parametrize("pair", [pytest.param(p, id=p.rpc) for p in PAIRS])
def test_self_relationship_is_refused(ctx, pair, form):
    _follow_both(ctx)  # a has some state a self-edge would disturb
    first, second = form(ctx.a)
    refused(
        ctx,
        "SELF_RELATIONSHIP",
        lambda: pair.call(ctx, first, second),
        field=(pair.first, pair.second),
        write=pair.write,
    )


@pytest.mark.parametrize("form", SELF_FORMS)
def test_batch_relationship_with_oneself_is_refused(ctx, form):
    me, also_me = form(ctx.a)
    refused(
        ctx,
        "SELF_RELATIONSHIP",
        lambda: ctx.client.graph.BatchGetRelationships(
            pb.BatchGetRelationshipsRequest(user_id=me, other_user_ids=[ctx.b, also_me])
        ),
        field="other_user_ids[1]",
        write=False,
    )


@pytest.mark.parametrize("rpc", USER_LISTS)
def test_viewer_may_be_the_list_owner(ctx, rpc):
    ctx.client.connect(ctx.b, ctx.a)
    page = _list(rpc)(ctx, user_id=ctx.a, viewer_id=ctx.a.upper())
    assert [u.user_id for u in page.users] == [ctx.b]
