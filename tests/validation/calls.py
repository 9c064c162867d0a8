"""Helpers shared by the tests in this package."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import grpc
import pytest
from grpc import StatusCode

from socialgraph.v1 import admin_pb2 as apb
from socialgraph.v1 import common_pb2 as cpb
from socialgraph.v1 import social_graph_pb2 as pb

from ..support import Client, raises

INVALID = StatusCode.INVALID_ARGUMENT

PAGE_MAX = 1000
AVATAR_MAX = 2048
MUTUAL_MAX = 100
BATCH_MAX = 100
FILTER_MAX = 1000


@dataclass
class Ctx:
    """Fresh users for one test: a and b (members), mod (a moderator)."""

    client: Client
    a: str
    b: str
    mod: str
    report: str = ""

    def make_report(self) -> str:
        """An OPEN report by a about b."""
        self.report = self.client.graph.ReportUser(
            pb.ReportUserRequest(
                reporter_id=self.a, reported_id=self.b, reason=cpb.REPORT_REASON_SPAM
            )
        ).report.report_id
        return self.report


def registered(client: Client, user_id: str):
    try:
        return client.admin.GetUser(apb.GetUserRequest(user_id=user_id)).user
    except grpc.RpcError as error:
        assert error.code() == StatusCode.NOT_FOUND, error
        return None


def snapshot(ctx: Ctx) -> dict:
    """Everything a write between ctx's users could change."""
    c = ctx.client
    users = [ctx.a, ctx.b, ctx.mod]
    return {
        "stats": c.stats(),
        "counts": c.counts(*users),
        "relationships": [c.relationship(x, y) for x in users for y in users if x != y],
        "users": [registered(c, u) for u in users],
    }


def check_field(raised, expected: str | tuple[str, ...]) -> None:
    """metadata["field"] names the offending field; for an element of a
    repeated field either "ids[1]" or "ids" will do."""
    actual = raised.info.metadata.get("field")
    wanted = (expected,) if isinstance(expected, str) else expected
    allowed = set(wanted) | {w.split("[")[0] for w in wanted}
    assert actual in allowed, (
        f"ErrorInfo.metadata['field'] is {actual!r}, expected one of {sorted(allowed)}"
    )


def refused(
    ctx: Ctx,
    reason: str,
    send: Callable[[], object],
    *,
    field=None,
    write: bool,
    code=INVALID,
):
    """``send`` fails with ``code``/``reason`` (naming ``field``), and, for a
    write, leaves the involved users exactly as they were."""
    before = snapshot(ctx) if write else None
    with raises(code, reason) as raised:
        send()
    if field is not None:
        check_field(raised, field)
    if write:
        assert snapshot(ctx) == before, "a refused write changed the graph"
    return raised


def _nothing(ctx: Ctx) -> None:
    pass


# ------------------------------------------------------ two-user requests


@dataclass(frozen=True)
class Pair:
    """An RPC taking two user ids; ``seed`` makes state the RPC would change."""

    rpc: str
    first: str
    second: str
    write: bool
    seed: Callable[[Ctx], object] = _nothing
    extra: dict = field(default_factory=dict)

    def call(self, ctx: Ctx, first: str, second: str):
        request = getattr(pb, f"{self.rpc}Request")(
            **{self.first: first, self.second: second, **self.extra}
        )
        return getattr(ctx.client.graph, self.rpc)(request)


def _follow_both(ctx: Ctx) -> None:
    ctx.client.follow(ctx.a, ctx.b)
    ctx.client.follow(ctx.b, ctx.a)


PAIRS = [
    Pair("Follow", "follower_id", "followee_id", True),
    Pair(
        "Unfollow",
        "follower_id",
        "followee_id",
        True,
        seed=lambda x: x.client.follow(x.a, x.b),
    ),
    Pair(
        "RemoveFollower",
        "user_id",
        "follower_id",
        True,
        seed=lambda x: x.client.follow(x.b, x.a),
    ),
    Pair(
        "SendConnectionRequest",
        "requester_id",
        "recipient_id",
        True,
        extra={"message": "hello"},
    ),
    Pair(
        "AcceptConnectionRequest",
        "recipient_id",
        "requester_id",
        True,
        seed=lambda x: x.client.send(x.b, x.a),
    ),
    Pair(
        "DeclineConnectionRequest",
        "recipient_id",
        "requester_id",
        True,
        seed=lambda x: x.client.send(x.b, x.a),
    ),
    Pair(
        "CancelConnectionRequest",
        "requester_id",
        "recipient_id",
        True,
        seed=lambda x: x.client.send(x.a, x.b),
    ),
    Pair(
        "RemoveConnection",
        "user_id",
        "other_user_id",
        True,
        seed=lambda x: x.client.connect(x.a, x.b),
    ),
    Pair("GetMutualConnections", "user_id", "other_user_id", False),
    Pair(
        "Block",
        "blocker_id",
        "blocked_id",
        True,
        seed=_follow_both,
        extra={"reason": "spam"},
    ),
    Pair(
        "Unblock",
        "blocker_id",
        "blocked_id",
        True,
        seed=lambda x: x.client.block(x.a, x.b),
    ),
    Pair("GetRelationship", "user_id", "other_user_id", False),
    Pair("CanInteract", "user_id", "other_user_id", False),
    Pair(
        "ReportUser",
        "reporter_id",
        "reported_id",
        True,
        extra={"reason": cpb.REPORT_REASON_HARASSMENT, "details": "details"},
    ),
]


@dataclass(frozen=True)
class Slot:
    """One user-id field of one RPC. ``send(ctx, value)`` sends an otherwise
    valid request with ``value`` in that field; ``target`` is the ctx user the
    field normally holds (malformed variants are made from that id, so a
    service that "repaired" them would act on a real, seeded user)."""

    name: str
    field: str
    target: str
    send: Callable[[Ctx, str], object]
    write: bool = False
    seed: Callable[[Ctx], object] = _nothing
    optional: bool = False  # empty means "not given" and is accepted
    element: bool = False  # an element of a repeated field


def _pair_slots(pair: Pair) -> list[Slot]:
    return [
        Slot(
            f"{pair.rpc}.{pair.first}",
            pair.first,
            "a",
            lambda x, v: pair.call(x, v, x.b),
            pair.write,
            pair.seed,
        ),
        Slot(
            f"{pair.rpc}.{pair.second}",
            pair.second,
            "b",
            lambda x, v: pair.call(x, x.a, v),
            pair.write,
            pair.seed,
        ),
    ]


def _list(rpc: str):
    def send(ctx: Ctx, **fields):
        return getattr(ctx.client.graph, rpc)(getattr(pb, f"{rpc}Request")(**fields))

    return send


USER_LISTS = ["ListFollowers", "ListFollowing", "ListConnections"]
OTHER_LISTS = [
    "ListIncomingConnectionRequests",
    "ListOutgoingConnectionRequests",
    "ListBlocked",
    "ListFeedSources",
]


def _upsert_seed(ctx: Ctx) -> None:
    """a is a registered member named Old whom b blocks: a wrongly accepted
    upsert would rename a, and a promotion would also lift b's block."""
    ctx.client.upsert(
        ctx.a,
        role=cpb.ROLE_MEMBER,
        display_name="Old",
        avatar_url="https://example.test/old.png",
    )
    ctx.client.block(ctx.b, ctx.a)


def _delete_seed(ctx: Ctx) -> None:
    ctx.client.upsert(ctx.a, role=cpb.ROLE_MEMBER, display_name="A")
    _follow_both(ctx)
    ctx.client.send(ctx.a, ctx.b)


def _upsert(ctx: Ctx, user_id: str, **user):
    fields = {"role": cpb.ROLE_ADMIN, "display_name": "Changed", **user}
    return ctx.client.admin.UpsertUser(
        apb.UpsertUserRequest(user=cpb.User(user_id=user_id, **fields))
    )


def _list_slots(rpc: str) -> list[Slot]:
    send = _list(rpc)
    slots = [Slot(f"{rpc}.user_id", "user_id", "a", lambda x, v: send(x, user_id=v))]
    if rpc in USER_LISTS:
        slots.append(
            Slot(
                f"{rpc}.viewer_id",
                "viewer_id",
                "b",
                lambda x, v: send(x, user_id=x.a, viewer_id=v),
                optional=True,
            )
        )
    return slots


SLOTS: list[Slot] = [slot for pair in PAIRS for slot in _pair_slots(pair)]
SLOTS += [slot for rpc in USER_LISTS + OTHER_LISTS for slot in _list_slots(rpc)]
SLOTS += [
    Slot(
        "BatchGetRelationships.user_id",
        "user_id",
        "a",
        lambda x, v: x.client.graph.BatchGetRelationships(
            pb.BatchGetRelationshipsRequest(user_id=v, other_user_ids=[x.b])
        ),
    ),
    Slot(
        "BatchGetRelationships.other_user_ids",
        "other_user_ids[1]",
        "b",
        lambda x, v: x.client.graph.BatchGetRelationships(
            pb.BatchGetRelationshipsRequest(user_id=x.a, other_user_ids=[x.mod, v])
        ),
        element=True,
    ),
    Slot(
        "GetCounts.user_ids",
        "user_ids[1]",
        "a",
        lambda x, v: x.client.graph.GetCounts(pb.GetCountsRequest(user_ids=[x.b, v])),
        element=True,
    ),
    Slot(
        "FilterInteractable.user_id",
        "user_id",
        "a",
        lambda x, v: x.client.graph.FilterInteractable(
            pb.FilterInteractableRequest(user_id=v, candidate_ids=[x.b])
        ),
    ),
    Slot(
        "FilterInteractable.candidate_ids",
        "candidate_ids[1]",
        "b",
        lambda x, v: x.client.graph.FilterInteractable(
            pb.FilterInteractableRequest(user_id=x.a, candidate_ids=[x.mod, v])
        ),
        element=True,
    ),
    Slot(
        "UpsertUser.user.user_id",
        "user.user_id",
        "a",
        lambda x, v: _upsert(x, v),
        True,
        _upsert_seed,
    ),
    Slot(
        "GetUser.user_id",
        "user_id",
        "a",
        lambda x, v: x.client.admin.GetUser(apb.GetUserRequest(user_id=v)),
        seed=lambda x: x.client.upsert(x.a),
    ),
    Slot(
        "DeleteUser.user_id",
        "user_id",
        "a",
        lambda x, v: x.client.admin.DeleteUser(apb.DeleteUserRequest(user_id=v)),
        True,
        _delete_seed,
    ),
    Slot(
        "ListReports.moderator_id",
        "moderator_id",
        "mod",
        lambda x, v: x.client.admin.ListReports(
            apb.ListReportsRequest(moderator_id=v, status=cpb.REPORT_STATUS_OPEN)
        ),
    ),
    Slot(
        "ResolveReport.moderator_id",
        "moderator_id",
        "mod",
        lambda x, v: x.client.admin.ResolveReport(
            apb.ResolveReportRequest(
                report_id=x.report,
                moderator_id=v,
                resolution=apb.REPORT_RESOLUTION_ACTIONED,
                note="n",
            )
        ),
        True,
        lambda x: x.make_report(),
    ),
]

SLOT_PARAMS = [pytest.param(slot, id=slot.name) for slot in SLOTS]
REQUIRED_SLOT_PARAMS = [
    pytest.param(slot, id=slot.name)
    for slot in SLOTS
    if not slot.optional and not slot.element
]
WRITE_SLOT_PARAMS = [pytest.param(slot, id=slot.name) for slot in SLOTS if slot.write]


def _misplaced_hyphens(u: str) -> str:
    h = u.replace("-", "")
    return "-".join([h[:4], h[4:12], h[12:16], h[16:20], h[20:]])


MANGLES = [
    pytest.param(lambda u: "not-a-uuid", id="not-a-uuid"),
    pytest.param(lambda u: u.replace("-", ""), id="no-hyphens"),
    pytest.param(lambda u: "{" + u + "}", id="braces"),
    pytest.param(lambda u: u + " ", id="trailing-space"),
    pytest.param(lambda u: " " + u, id="leading-space"),
    pytest.param(lambda u: u + "\n", id="trailing-newline"),
    pytest.param(lambda u: "urn:uuid:" + u, id="urn-prefix"),
    pytest.param(lambda u: u[:-1], id="one-digit-short"),
    pytest.param(lambda u: u + "0", id="one-digit-long"),
    pytest.param(lambda u: "g" + u[1:], id="non-hex-letter"),
    pytest.param(lambda u: "\u0663" + u[1:], id="non-ascii-digit"),
    pytest.param(_misplaced_hyphens, id="hyphens-misplaced"),
    pytest.param(lambda u: u + "\x00", id="trailing-nul"),
    pytest.param(lambda u: " ", id="blank"),
]
