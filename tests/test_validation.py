"""Malformed requests, for every RPC of SocialGraphService and AdminService,
on every backend.

Each case really sends the request and checks the gRPC code, the ErrorInfo
reason and (where the SPEC promises it) ErrorInfo.metadata["field"]. Every
refused *write* is wrapped in a snapshot of the involved users (GetStats
totals, their counters, the relationships between them and their user
records) taken before the call and compared afterwards: a request that fails
changes nothing. Write cases seed some state first (a follow, a pending
request, a connection, a block, a report...) so that a wrongly executed call
would visibly change it.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import grpc
import pytest
from grpc import StatusCode

from socialgraph.v1 import admin_pb2 as apb
from socialgraph.v1 import common_pb2 as cpb
from socialgraph.v1 import social_graph_pb2 as pb

from .support import Client, new_user, raises, serving

INVALID = StatusCode.INVALID_ARGUMENT

PAGE_MAX = 1000
AVATAR_MAX = 2048
MUTUAL_MAX = 100
BATCH_MAX = 100
FILTER_MAX = 1000


# ---------------------------------------------------------------- context


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


@pytest.fixture
def ctx(client) -> Ctx:
    mod = new_user()
    client.upsert(mod, role=cpb.ROLE_MODERATOR)
    return Ctx(client, new_user(), new_user(), mod)


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


# ------------------------------------------------------------- id slots


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


# ---------------------------------------------------------- self relations


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


# ------------------------------------------------------------- free text


@dataclass(frozen=True)
class Text:
    """A length-limited text field: ``send`` writes it, ``read`` reads the
    stored value back after a successful write."""

    name: str
    field: str
    limit: int
    send: Callable[[Ctx, str], object]
    read: Callable[[Ctx, Any], str]  # gets what send returned
    seed: Callable[[Ctx], object] = _nothing


def _find_report(ctx: Ctx, status: cpb.ReportStatus.ValueType, report_id: str):
    page = ctx.client.admin.ListReports(
        apb.ListReportsRequest(moderator_id=ctx.mod, status=status, page_size=PAGE_MAX)
    )
    [report] = [r for r in page.reports if r.report_id == report_id]
    return report


def _get_user(ctx: Ctx):
    return ctx.client.admin.GetUser(apb.GetUserRequest(user_id=ctx.a)).user


def _seed_named_user(ctx: Ctx) -> None:
    ctx.client.upsert(
        ctx.a, display_name="Old", avatar_url="https://example.test/old.png"
    )


TEXTS = [
    Text(
        "SendConnectionRequest.message",
        "message",
        500,
        lambda x, t: x.client.send(x.a, x.b, t),
        lambda x, r: (
            x.client.graph.ListOutgoingConnectionRequests(
                pb.ListOutgoingConnectionRequestsRequest(user_id=x.a)
            )
            .requests[0]
            .message
        ),
    ),
    Text(
        "Block.reason",
        "reason",
        500,
        lambda x, t: x.client.block(x.a, x.b, t),
        lambda x, r: (
            x.client.graph.ListBlocked(pb.ListBlockedRequest(user_id=x.a))
            .blocks[0]
            .reason
        ),
        seed=_follow_both,
    ),
    Text(
        "ReportUser.details",
        "details",
        2000,
        lambda x, t: x.client.graph.ReportUser(
            pb.ReportUserRequest(
                reporter_id=x.a,
                reported_id=x.b,
                reason=cpb.REPORT_REASON_OTHER,
                details=t,
            )
        ),
        lambda x, r: (
            _find_report(x, cpb.REPORT_STATUS_OPEN, r.report.report_id).details
        ),
    ),
    Text(
        "ResolveReport.note",
        "note",
        2000,
        lambda x, t: x.client.admin.ResolveReport(
            apb.ResolveReportRequest(
                report_id=x.report,
                moderator_id=x.mod,
                resolution=apb.REPORT_RESOLUTION_DISMISSED,
                note=t,
            )
        ),
        lambda x, r: _find_report(x, cpb.REPORT_STATUS_DISMISSED, x.report).note,
        seed=lambda x: x.make_report(),
    ),
    Text(
        "UpsertUser.user.display_name",
        "user.display_name",
        200,
        lambda x, t: _upsert(x, x.a, role=cpb.ROLE_MEMBER, display_name=t),
        lambda x, r: _get_user(x).display_name,
        seed=_seed_named_user,
    ),
]
# The avatar URL is ASCII and must be an https URL: its own tests follow.
TEXT_PARAMS = [pytest.param(t, id=t.name) for t in TEXTS]

# Lengths are in Unicode code points: "é" is 2 UTF-8 bytes, "中" 3, "😀" 4
# (and 2 UTF-16 units); "e\u0301" is two code points (e + combining acute).
TOO_LONG = [
    pytest.param(lambda n: "x" * (n + 1), id="ascii"),
    pytest.param(lambda n: "é" * (n + 1), id="two-byte"),
    pytest.param(lambda n: "😀" * (n + 1), id="astral"),
    pytest.param(lambda n: "😀" * n + "x", id="astral-plus-one"),
    pytest.param(lambda n: "e\u0301" * (n // 2) + "e", id="combining"),
]
AT_LIMIT = [
    pytest.param(lambda n: "x" * n, id="ascii"),
    pytest.param(lambda n: "é" * n, id="two-byte"),
    pytest.param(lambda n: "中" * n, id="three-byte"),
    pytest.param(lambda n: "😀" * n, id="astral"),
    pytest.param(lambda n: "e\u0301" * (n // 2), id="combining"),
]
WITH_NUL = [
    pytest.param(lambda n: "\x00", id="only-nul"),
    pytest.param(lambda n: "before\x00after", id="nul-inside"),
    pytest.param(lambda n: "x" * (n - 1) + "\x00", id="nul-at-limit"),
]


@pytest.mark.parametrize("make", TOO_LONG)
@pytest.mark.parametrize("text", TEXT_PARAMS)
def test_text_one_code_point_over_the_limit_is_too_long(ctx, text, make):
    text.seed(ctx)
    value = make(text.limit)
    assert len(value) == text.limit + 1
    refused(
        ctx,
        "FIELD_TOO_LONG",
        lambda: text.send(ctx, value),
        field=text.field,
        write=True,
    )


@pytest.mark.parametrize("make", AT_LIMIT)
@pytest.mark.parametrize("text", TEXT_PARAMS)
def test_text_exactly_at_the_limit_is_accepted_and_stored_whole(ctx, text, make):
    text.seed(ctx)
    value = make(text.limit)
    assert len(value) == text.limit
    response = text.send(ctx, value)
    assert text.read(ctx, response) == value


@pytest.mark.parametrize("make", WITH_NUL)
@pytest.mark.parametrize("text", TEXT_PARAMS)
def test_text_with_nul_is_invalid_text(ctx, text, make):
    text.seed(ctx)
    refused(
        ctx,
        "INVALID_TEXT",
        lambda: text.send(ctx, make(text.limit)),
        field=text.field,
        write=True,
    )


def _set_avatar(ctx: Ctx, url: str):
    return _upsert(ctx, ctx.a, role=cpb.ROLE_MEMBER, display_name="Old", avatar_url=url)


@pytest.mark.parametrize(
    "url",
    [
        "https://cdn.example.test/a.png",
        "HTTPS://cdn.example.test:8443/a%20b.png?size=64#x",
        "https://[2001:db8::1]/a.png",
        "",
        "https://e.test/" + "x" * (AVATAR_MAX - len("https://e.test/")),
    ],
    ids=["plain", "port-query-fragment", "ipv6", "empty", "at-limit"],
)
def test_avatar_urls_that_are_absolute_https_are_stored_whole(ctx, url):
    _seed_named_user(ctx)
    _set_avatar(ctx, url)
    assert _get_user(ctx).avatar_url == url


@pytest.mark.parametrize(
    "url",
    [
        "javascript:alert(1)",
        "data:image/svg+xml;base64,PHN2Zz48L3N2Zz4=",
        "http://cdn.example.test/a.png",
        "ftp://cdn.example.test/a.png",
        "//cdn.example.test/a.png",
        "/a.png",
        "a.png",
        "https:///a.png",
        "https://cdn.example.test/a b.png",
        "https://cdn.example.test/\u00e9.png",
        "https://cdn.example.test/a.png\n",
        "https://cdn.example.test/\x00",
        "https://[::1/a.png",
    ],
    ids=[
        "javascript", "data", "http", "ftp", "scheme-relative", "path", "relative", "no-host",
        "space", "non-ascii", "newline", "nul", "broken-ipv6",
    ],
)
def test_avatar_urls_that_are_not_absolute_https_are_invalid_text(ctx, url):
    _seed_named_user(ctx)
    refused(ctx, "INVALID_TEXT", lambda: _set_avatar(ctx, url), field="user.avatar_url", write=True)
    assert _get_user(ctx).avatar_url == "https://example.test/old.png"


def test_avatar_url_one_character_over_the_limit_is_too_long(ctx):
    _seed_named_user(ctx)
    url = "https://e.test/" + "x" * (AVATAR_MAX + 1 - len("https://e.test/"))
    refused(ctx, "FIELD_TOO_LONG", lambda: _set_avatar(ctx, url), field="user.avatar_url", write=True)


def test_http_avatars_are_accepted_only_behind_the_setting(storage):
    from ratelimit import InProcessLimiter, parse_windows
    from server.app import make_graph
    from server.rules import Graph, Policy
    from server.settings import Settings

    assert make_graph(Settings(allow_http_avatars=True), storage).policy.avatar_schemes == ("https", "http")
    assert make_graph(Settings(), storage).policy.avatar_schemes == ("https",)
    graph = Graph(storage, InProcessLimiter(parse_windows("10/1h")), Policy(avatar_schemes=("https", "http")))
    with serving(graph) as client:
        user = new_user()
        assert client.upsert(user, avatar_url="http://cdn.example.test/a.png").avatar_url == "http://cdn.example.test/a.png"
        with raises(INVALID, "INVALID_TEXT"):
            client.upsert(user, avatar_url="javascript:alert(1)")


DISPLAY_NAMES_REFUSED = [
    pytest.param("Eve\u202egnp.exe", id="right-to-left-override"),
    pytest.param("\u202dEve", id="left-to-right-override"),
    pytest.param("Eve\u2067x\u2069", id="isolate"),
    pytest.param("Eve\u200f", id="right-to-left-mark"),
    pytest.param("E\u200bve", id="zero-width-space"),
    pytest.param("E\u200cve", id="zero-width-non-joiner"),
    pytest.param("E\u200dve", id="lone-zero-width-joiner"),
    pytest.param("E\u2060ve", id="word-joiner"),
    pytest.param("\ufeffEve", id="byte-order-mark"),
    pytest.param("E\u00adve", id="soft-hyphen"),
    pytest.param("Eve\nAdmin", id="newline"),
    pytest.param("Eve\tAdmin", id="tab"),
    pytest.param("Eve\x1b[31m", id="escape"),
    pytest.param("Eve\x85", id="c1-control"),
    pytest.param("Eve\u2028Admin", id="line-separator"),
]


@pytest.mark.parametrize("name", DISPLAY_NAMES_REFUSED)
def test_display_names_with_control_bidi_or_zero_width_characters_are_invalid_text(ctx, name):
    _seed_named_user(ctx)
    refused(
        ctx,
        "INVALID_TEXT",
        lambda: _upsert(ctx, ctx.a, role=cpb.ROLE_MEMBER, display_name=name),
        field="user.display_name",
        write=True,
    )
    assert _get_user(ctx).display_name == "Old"


@pytest.mark.parametrize(
    "name",
    [
        "Ren\u00e9e",
        "\u0645\u0631\u062d\u0628\u0627 Ann",
        "\u674e\u96f7",
        "\U0001f469\u200d\U0001f4bb Ann",
        "\U0001f3f4\U000e0067\U000e0062\U000e0073\U000e0063\U000e0074\U000e007f",
        "\u2764\ufe0f\u200d\U0001f525",
    ],
    ids=["latin", "arabic", "cjk", "emoji-zwj-sequence", "flag-tags", "variation-selector-zwj"],
)
def test_display_names_in_any_script_and_emoji_sequences_are_accepted(ctx, name):
    _upsert(ctx, ctx.a, role=cpb.ROLE_MEMBER, display_name=name)
    assert _get_user(ctx).display_name == name


FREE_TEXTS = [t for t in TEXTS if t.field != "user.display_name"]


@pytest.mark.parametrize(
    "value", ["a\u202eb", "a\u202ab", "a\x07b", "a\x1b[2Jb", "a\x7fb"], ids=["rlo", "lre", "bell", "escape", "delete"]
)
@pytest.mark.parametrize("text", [pytest.param(t, id=t.name) for t in FREE_TEXTS])
def test_free_text_with_controls_or_bidi_overrides_is_invalid_text(ctx, text, value):
    text.seed(ctx)
    refused(ctx, "INVALID_TEXT", lambda: text.send(ctx, value), field=text.field, write=True)


@pytest.mark.parametrize("text", [pytest.param(t, id=t.name) for t in FREE_TEXTS])
def test_free_text_keeps_line_breaks_tabs_and_isolates(ctx, text):
    text.seed(ctx)
    value = "line one\r\n\tline two \u2067\u0645\u0631\u062d\u0628\u0627\u2069"
    assert text.read(ctx, text.send(ctx, value)) == value


# ------------------------------------------------------------------ lists


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


# ------------------------------------------------------ mutual connections


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


# ------------------------------------------------------------------ batches


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


# -------------------------------------------------------------------- enums


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


# ------------------------------------------------------- admin specifics


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
