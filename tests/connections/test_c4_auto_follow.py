"""C4: auto-follow on sending and accepting, and what does not unfollow."""

from __future__ import annotations

import pytest

from .calls import (
    CONNECTED,
    PENDING,
    cancel,
    decline,
    follows,
    remove,
)


def test_sending_makes_requester_follow_recipient(client, user):
    a, b = user(), user()
    client.send(a, b)
    assert follows(client, a, b)
    assert not follows(client, b, a)
    [ca, cb] = client.counts(a, b)
    assert (ca.following, cb.followers, ca.followers, cb.following) == (1, 1, 0, 0)


def test_accepting_makes_recipient_follow_requester(client, user):
    a, b = user(), user()
    client.send(a, b)
    client.accept(b, a)
    assert follows(client, b, a) and follows(client, a, b)
    [ca, cb] = client.counts(a, b)
    assert (ca.following, ca.followers, cb.following, cb.followers) == (1, 1, 1, 1)


def test_sending_when_already_following_keeps_one_follow(client, user):
    a, b = user(), user()
    since = client.follow(a, b).since
    client.send(a, b)
    assert client.counts(b)[0].followers == 1
    assert not client.follow(a, b).created
    assert client.follow(a, b).since == since


def test_decline_does_not_unfollow(client, user):
    a, b = user(), user()
    client.send(a, b)
    decline(client, b, a)
    assert follows(client, a, b)
    assert not follows(client, b, a)


def test_cancel_does_not_unfollow(client, user):
    a, b = user(), user()
    client.send(a, b)
    cancel(client, a, b)
    assert follows(client, a, b)


@pytest.mark.parametrize("remover", ["requester", "recipient"])
def test_remove_connection_does_not_unfollow(client, user, remover):
    a, b = user(), user()
    client.connect(a, b)
    me, other = (a, b) if remover == "requester" else (b, a)
    remove(client, me, other)
    assert follows(client, a, b) and follows(client, b, a)
    [ca, cb] = client.counts(a, b)
    assert (ca.following, ca.followers, cb.following, cb.followers) == (1, 1, 1, 1)


def test_unfollowing_a_connection_keeps_the_connection(client, user):
    a, b = user(), user()
    client.connect(a, b)
    client.unfollow(a, b)
    assert client.relationship(a, b).connected


def test_auto_follow_can_be_switched_off(no_follow_client, user):
    a, b, c, d = user(), user(), user(), user()
    assert no_follow_client.send(a, b).state == PENDING
    assert not follows(no_follow_client, a, b)
    no_follow_client.accept(b, a)
    rel = no_follow_client.relationship(a, b)
    assert rel.connected and not rel.following and not rel.followed_by
    # crossing requests connect without follows too
    no_follow_client.send(c, d)
    assert no_follow_client.send(d, c).state == CONNECTED
    rel = no_follow_client.relationship(c, d)
    assert rel.connected and not rel.following and not rel.followed_by
    assert [(x.following, x.followers) for x in no_follow_client.counts(a, b, c, d)] == [(0, 0)] * 4
