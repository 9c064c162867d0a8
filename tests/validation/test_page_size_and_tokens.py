"""List paging: page sizes and page tokens."""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from socialgraph.v1 import admin_pb2 as apb
from socialgraph.v1 import common_pb2 as cpb
from socialgraph.v1 import social_graph_pb2 as pb

from ..support import new_user
from .calls import (
    OTHER_LISTS,
    PAGE_MAX,
    USER_LISTS,
    check_field,
    refused,
)


def _lists() -> dict[str, Callable]:
    """Every paged list: send(client, owner, moderator, **paging)."""

    def graph_list(rpc):
        return lambda c, owner, mod, **kw: getattr(c.graph, rpc)(
            getattr(pb, f"{rpc}Request")(user_id=owner, **kw)
        )

    lists = {rpc: graph_list(rpc) for rpc in USER_LISTS + OTHER_LISTS}
    lists["ListReports"] = lambda c, owner, mod, **kw: c.admin.ListReports(
        apb.ListReportsRequest(
            moderator_id=mod, status=kw.pop("status", cpb.REPORT_STATUS_OPEN), **kw
        )
    )
    return lists


LISTS = _lists()
LIST_PARAMS = list(LISTS)


@pytest.mark.parametrize("size", [-1, -1000, PAGE_MAX + 1, 2**31 - 1, -(2**31)])
@pytest.mark.parametrize("rpc", LIST_PARAMS)
def test_page_size_out_of_range_is_invalid_page_size(ctx, rpc, size):
    refused(
        ctx,
        "INVALID_PAGE_SIZE",
        lambda: LISTS[rpc](ctx.client, ctx.a, ctx.mod, page_size=size),
        field="page_size",
        write=False,
    )


@pytest.mark.parametrize("size", [0, 1, PAGE_MAX])
@pytest.mark.parametrize("rpc", LIST_PARAMS)
def test_page_size_in_range_is_accepted(ctx, rpc, size):
    LISTS[rpc](ctx.client, ctx.a, ctx.mod, page_size=size)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


GARBAGE_TOKENS = [
    pytest.param("garbage", id="word"),
    pytest.param("!!!!", id="punctuation"),
    pytest.param("%%%%", id="percent"),
    pytest.param("=", id="padding-only"),
    pytest.param("ünïcödé", id="non-ascii"),
    pytest.param("a" * 4096, id="very-long"),
    pytest.param(_b64(b"\xff\xfe\xfd\xfc"), id="binary"),
    pytest.param(_b64(b"nodots"), id="no-dots"),
    pytest.param(_b64(b"x.y.z"), id="wrong-shape"),
    pytest.param(_b64(b"..."), id="empty-parts"),
    pytest.param(_b64(b"followers.-5.x"), id="negative-position"),
]


@pytest.mark.parametrize("token", GARBAGE_TOKENS)
@pytest.mark.parametrize("rpc", LIST_PARAMS)
def test_garbage_page_token_is_invalid_page_token(ctx, rpc, token):
    raised = refused(
        ctx,
        "INVALID_PAGE_TOKEN",
        lambda: LISTS[rpc](ctx.client, ctx.a, ctx.mod, page_token=token),
        write=False,
    )
    check_field(raised, "page_token")


@dataclass
class Walks:
    """Real first-page tokens (page_size=1) of every list of one owner."""

    owner: str
    mod: str
    tokens: dict[str, str]


@pytest.fixture(scope="module")
def walks(client) -> Walks:
    owner, mod = new_user(), new_user()
    client.upsert(mod, role=cpb.ROLE_MODERATOR)
    for _ in range(2):
        client.follow(new_user(), owner)  # followers
        client.follow(owner, new_user())  # following, feed
        friend = new_user()
        client.connect(owner, friend)  # connections
        client.send(new_user(), owner)  # incoming
        client.send(owner, new_user())  # outgoing
        client.block(owner, new_user())  # blocked
        client.graph.ReportUser(
            pb.ReportUserRequest(  # reports
                reporter_id=new_user(), reported_id=owner, reason=cpb.REPORT_REASON_SPAM
            )
        )
    tokens = {}
    for rpc, send in LISTS.items():
        tokens[rpc] = send(client, owner, mod, page_size=1).next_page_token
        assert tokens[rpc], f"{rpc} should have a second page"
    return Walks(owner, mod, tokens)


@pytest.mark.parametrize("rpc", LIST_PARAMS)
def test_own_page_token_is_accepted(client, walks, rpc):
    """The control for the token tests: a list's own token gives its next page."""
    first = LISTS[rpc](client, walks.owner, walks.mod, page_size=1)
    second = LISTS[rpc](
        client, walks.owner, walks.mod, page_size=1, page_token=walks.tokens[rpc]
    )

    def items(page) -> list[str]:  # every list response has its items in field 1
        return [str(m) for m in getattr(page, page.DESCRIPTOR.fields_by_number[1].name)]

    assert items(second) and not set(items(second)) & set(items(first))


@pytest.mark.parametrize(
    "source,target",
    [
        pytest.param(s, t, id=f"{s}-token-to-{t}")
        for s in LIST_PARAMS
        for t in LIST_PARAMS
        if s != t
    ],
)
def test_page_token_of_another_list_is_invalid_page_token(ctx, walks, source, target):
    raised = refused(
        ctx,
        "INVALID_PAGE_TOKEN",
        lambda: LISTS[target](
            ctx.client, walks.owner, walks.mod, page_token=walks.tokens[source]
        ),
        write=False,
    )
    check_field(raised, "page_token")


@pytest.mark.parametrize("rpc", USER_LISTS + OTHER_LISTS)
def test_page_token_of_another_users_list_is_invalid_page_token(ctx, walks, rpc):
    """A token is "valid only for the same list": the followers of one user
    are not the same list as the followers of another."""
    ctx.client.follow(ctx.b, ctx.a)
    refused(
        ctx,
        "INVALID_PAGE_TOKEN",
        lambda: LISTS[rpc](ctx.client, ctx.a, ctx.mod, page_token=walks.tokens[rpc]),
        field="page_token",
        write=False,
    )


def test_page_token_of_reports_with_another_status_is_invalid_page_token(ctx, walks):
    refused(
        ctx,
        "INVALID_PAGE_TOKEN",
        lambda: LISTS["ListReports"](
            ctx.client,
            ctx.a,
            walks.mod,
            status=cpb.REPORT_STATUS_DISMISSED,
            page_token=walks.tokens["ListReports"],
        ),
        field="page_token",
        write=False,
    )


def _forge(token: str, position: str | None = None, key: str | None = None) -> str:
    """A token in the service's own shape (``<time>.<id>`` and a 16-byte MAC)
    with one part replaced and the MAC kept."""
    raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    created, old_key = raw[:-16].decode("ascii").split(".", 1)
    forged = f"{created if position is None else position}.{old_key if key is None else key}"
    return _b64(forged.encode() + raw[-16:])


FORGERIES = [
    pytest.param({"position": "9999999999999999999"}, id="position-beyond-int64"),
    pytest.param({"position": "99999999999999999999"}, id="position-20-digits"),
    pytest.param({"position": "-1"}, id="position-negative"),
    pytest.param({"position": ""}, id="position-empty"),
    pytest.param({"key": ""}, id="key-empty"),
]


@pytest.mark.parametrize("forgery", FORGERIES)
@pytest.mark.parametrize("rpc", LIST_PARAMS)
def test_tampered_page_token_is_invalid_page_token(ctx, walks, rpc, forgery):
    token = _forge(walks.tokens[rpc], **forgery)
    refused(
        ctx,
        "INVALID_PAGE_TOKEN",
        lambda: LISTS[rpc](ctx.client, walks.owner, walks.mod, page_token=token),
        field="page_token",
        write=False,
    )
