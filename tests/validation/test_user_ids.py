"""User id slots: malformed, missing, any case; the viewer id."""

from __future__ import annotations

import pytest

from .calls import (
    MANGLES,
    REQUIRED_SLOT_PARAMS,
    SLOT_PARAMS,
    USER_LISTS,
    _list,
    refused,
)


@pytest.mark.parametrize("mangle", MANGLES)
@pytest.mark.parametrize("slot", SLOT_PARAMS)
def test_malformed_user_id_is_invalid_user_id(ctx, slot, mangle):
    slot.seed(ctx)
    bad = mangle(getattr(ctx, slot.target))
    refused(
        ctx,
        "INVALID_USER_ID",
        lambda: slot.send(ctx, bad),
        field=slot.field,
        write=slot.write,
    )


@pytest.mark.parametrize("slot", REQUIRED_SLOT_PARAMS)
def test_empty_required_user_id_is_missing_field(ctx, slot):
    slot.seed(ctx)
    refused(
        ctx,
        "MISSING_FIELD",
        lambda: slot.send(ctx, ""),
        field=slot.field,
        write=slot.write,
    )


@pytest.mark.parametrize("slot", SLOT_PARAMS)
def test_well_formed_ids_in_any_case_are_accepted(ctx, slot):
    """The control for the two tests above: the same requests with the real
    id (upper-cased: any case is accepted) succeed."""
    slot.seed(ctx)
    slot.send(ctx, getattr(ctx, slot.target).upper())


@pytest.mark.parametrize("rpc", USER_LISTS)
def test_empty_viewer_id_means_no_viewer(ctx, rpc):
    ctx.client.follow(ctx.b, ctx.a)
    _list(rpc)(ctx, user_id=ctx.a, viewer_id="")
