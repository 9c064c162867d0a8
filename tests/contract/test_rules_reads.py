"""N1 and the read paths against ``Graph`` directly: feed sources, page
tokens, consistency tokens, batches in request order."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from server.rules import Consistency, Graph, InvalidArgument, Reason
from storage.types import Counts, FeedSource

from .domain import every, refused

# --------------------------------------------------------------------- N1


def test_n1_feed_sources(graph: Graph, user: Callable[[], str]) -> None:
    """Public posts from users followed, private ones only from users also
    connected, nothing from a user either blocks."""
    me, public, friend, connected_only, foe, fan = (user() for _ in range(6))
    graph.follow(me, public)
    graph.send_connection_request(me, friend, "")
    graph.accept_connection_request(friend, me)
    graph.send_connection_request(connected_only, me, "")
    graph.accept_connection_request(me, connected_only)
    graph.unfollow(me, connected_only)
    graph.follow(me, foe)
    graph.block(foe, me, "")
    graph.follow(fan, me)
    sources = every(lambda token: graph.list_feed_sources(me, 1, token))
    assert [(s.author_id, s.include_private) for s in sources] == [(friend, True), (public, False)]
    assert all(isinstance(s, FeedSource) for s in sources)


# ---------------------------------------------------------------- paging


def test_pages_walk_every_item_once_newest_first(graph: Graph, user: Callable[[], str]) -> None:
    owner = user()
    fans = [user() for _ in range(5)]
    for fan in fans:
        graph.follow(fan, owner)
    first = graph.list_followers(owner, 2, "", None)
    assert [u.user_id for u in first.items] == fans[:2:-1] and first.next_page_token
    walked = every(lambda token: graph.list_followers(owner, 2, token, None))
    assert [u.user_id for u in walked] == fans[::-1]
    exact = graph.list_followers(owner, 5, "", None)
    assert (len(exact.items), exact.next_page_token) == (5, "")


def test_a_page_token_is_good_only_for_its_own_list(graph: Graph, user: Callable[[], str]) -> None:
    owner, other = user(), user()
    for _ in range(2):
        graph.follow(user(), owner)
        graph.follow(owner, user())
    token = graph.list_followers(owner, 1, "", None).next_page_token
    assert graph.list_followers(owner, 1, token, None).items
    reads: list[Callable[[], object]] = [
        lambda: graph.list_following(owner, 1, token, None),
        lambda: graph.list_followers(other, 1, token, None),
        lambda: graph.list_blocked(owner, 1, token),
        lambda: graph.list_followers(owner, 1, token[:-2] + ("AA" if token[-2:] != "AA" else "BB"), None),
        lambda: graph.list_followers(owner, 1, "not a token", None),
    ]
    for read in reads:
        with refused(InvalidArgument, Reason.INVALID_PAGE_TOKEN) as raised:
            read()
        assert raised.value.field == "page_token"


# ----------------------------------------------------------- consistency


def test_a_write_token_is_read_back_at_least_as_fresh(graph: Graph, user: Callable[[], str]) -> None:
    a, b = user(), user()
    graph.follow(a, b)
    token = graph.consistency_token()
    assert token
    fresh = Consistency(at_least_as_fresh=token)
    assert graph.get_relationship(a, b, fresh).following
    assert graph.get_counts([b], fresh)[0].followers == 1
    assert graph.get_relationship(a, b, Consistency(fully_consistent=True)).following


@pytest.mark.parametrize("token", ["garbage", "AAAAAAAA"])
def test_a_bad_consistency_token_is_invalid(graph: Graph, user: Callable[[], str], token: str) -> None:
    a, b = user(), user()
    reads: list[Callable[[], object]] = [
        lambda: graph.get_relationship(a, b, Consistency(at_least_as_fresh=token)),
        lambda: graph.list_followers(a, 10, "", None, Consistency(at_least_as_fresh=token)),
        lambda: graph.stats(Consistency(at_least_as_fresh=token)),
    ]
    for read in reads:
        with refused(InvalidArgument, Reason.INVALID_CONSISTENCY_TOKEN):
            read()


# --------------------------------------------------------------- batches


def test_batches_answer_in_request_order_with_repeats(graph: Graph, user: Callable[[], str]) -> None:
    me, idol, stranger = user(), user(), user()
    graph.follow(me, idol)
    found = graph.batch_get_relationships(me, [stranger, idol, stranger])
    assert [(r.other_user_id, r.following) for r in found] == [(stranger, False), (idol, True), (stranger, False)]
    counts = graph.get_counts([idol, stranger, idol])
    assert [(c.user_id, c.followers) for c in counts] == [(idol, 1), (stranger, 0), (idol, 1)]
    assert counts[1] == Counts(stranger)
    with refused(InvalidArgument, Reason.SELF_RELATIONSHIP):
        graph.batch_get_relationships(me, [idol, me])
