"""GetCounts."""

from __future__ import annotations

from ..support import ZERO, counters, zero


def test_counts_in_request_order_with_repeats(client, user):
    a, b, c = user(), user(), user()
    client.follow(a, b)
    client.block(c, a)
    counts = client.counts(b, a, c, b)
    assert [x.user_id for x in counts] == [b, a, c, b]
    assert counters(counts[0]) == zero(followers=1)
    assert counters(counts[1]) == zero(following=1)
    assert counters(counts[2]) == zero(blocked=1)
    assert counters(counts[3]) == zero(followers=1)


def test_counts_of_unknown_users_are_zero(client, user):
    known, unknown = user(), user()
    client.block(known, user())
    counts = client.counts(unknown, known, unknown)
    assert [x.user_id for x in counts] == [unknown, known, unknown]
    assert counters(counts[0]) == ZERO
    assert counters(counts[1]) == zero(blocked=1)
    assert counters(counts[2]) == ZERO


def test_counts_return_canonical_ids(client, user):
    a, b = user(), user()
    client.follow(a, b)
    [cb] = client.counts(b.upper())
    assert cb.user_id == b
    assert cb.followers == 1
