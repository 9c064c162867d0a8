"""Batch fields: at most 100 ids (1,000 for FilterInteractable)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest

from socialgraph.v1 import social_graph_pb2 as pb

from ..support import new_user
from .calls import (
    BATCH_MAX,
    FILTER_MAX,
    Ctx,
    refused,
)


@dataclass(frozen=True)
class Batch:
    name: str
    field: str
    limit: int
    send: Callable[[Ctx, list[str]], object]
    empty_ok: bool


BATCHES = [
    Batch(
        "GetCounts",
        "user_ids",
        BATCH_MAX,
        lambda x, ids: (
            x.client.graph.GetCounts(pb.GetCountsRequest(user_ids=ids)).counts
        ),
        False,
    ),
    Batch(
        "BatchGetRelationships",
        "other_user_ids",
        BATCH_MAX,
        lambda x, ids: (
            x.client.graph.BatchGetRelationships(
                pb.BatchGetRelationshipsRequest(user_id=x.a, other_user_ids=ids)
            ).relationships
        ),
        False,
    ),
    Batch(
        "FilterInteractable",
        "candidate_ids",
        FILTER_MAX,
        lambda x, ids: (
            x.client.graph.FilterInteractable(
                pb.FilterInteractableRequest(user_id=x.a, candidate_ids=ids)
            ).allowed_ids
        ),
        True,
    ),
]
BATCH_PARAMS = [pytest.param(b, id=b.name) for b in BATCHES]


@pytest.mark.parametrize("how", ["distinct", "repeats", "far-over"])
@pytest.mark.parametrize("batch", BATCH_PARAMS)
def test_batch_over_the_limit_is_too_many_ids(ctx, batch, how):
    if how == "distinct":
        ids = [new_user() for _ in range(batch.limit + 1)]
    elif how == "repeats":
        ids = [ctx.b] * (batch.limit + 1)
    else:
        ids = [new_user() for _ in range(batch.limit * 5)]
    refused(
        ctx,
        "TOO_MANY_IDS",
        lambda: batch.send(ctx, ids),
        field=batch.field,
        write=False,
    )


@pytest.mark.parametrize("batch", BATCH_PARAMS)
def test_batch_at_the_limit_is_accepted_in_request_order(ctx, batch):
    ids = [new_user() for _ in range(batch.limit)]
    answer = batch.send(ctx, [i.upper() for i in ids])
    assert len(answer) == batch.limit
    got = [
        item
        if isinstance(item, str)
        else getattr(item, "user_id", None) or item.other_user_id
        for item in answer
    ]
    assert got == ids


@pytest.mark.parametrize("batch", BATCH_PARAMS)
def test_empty_batch(ctx, batch):
    if batch.empty_ok:
        assert list(batch.send(ctx, [])) == []
    else:
        refused(
            ctx,
            "MISSING_FIELD",
            lambda: batch.send(ctx, []),
            field=batch.field,
            write=False,
        )
