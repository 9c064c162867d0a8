"""Free text, display names and avatar URLs: length, characters, schemes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from socialgraph.v1 import admin_pb2 as apb
from socialgraph.v1 import common_pb2 as cpb
from socialgraph.v1 import social_graph_pb2 as pb

from ..support import new_user, raises, serving
from .calls import (
    AVATAR_MAX,
    INVALID,
    PAGE_MAX,
    Ctx,
    _follow_both,
    _nothing,
    _upsert,
    refused,
)


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
