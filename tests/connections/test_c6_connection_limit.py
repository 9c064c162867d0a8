"""C6: the connection limit on sending and accepting."""

from __future__ import annotations

from grpc import StatusCode

from ..conftest import CONNECTION_LIMIT
from ..support import raises
from .calls import (
    CONNECTED,
    connection_ids,
    fill,
    follows,
    incoming,
    remove,
    tally,
)


def test_user_at_limit_cannot_send(client, user):
    full, other = user(), user()
    fill(client, full, CONNECTION_LIMIT, user)
    with raises(StatusCode.RESOURCE_EXHAUSTED, "CONNECTION_LIMIT_REACHED") as raised:
        client.send(full, other)
    assert raised.info.metadata["user_id"] == full


def test_refused_send_at_limit_creates_nothing(client, user):
    full, other = user(), user()
    fill(client, full, CONNECTION_LIMIT, user)
    before = client.counts(full, other)
    with raises(StatusCode.RESOURCE_EXHAUSTED, "CONNECTION_LIMIT_REACHED"):
        client.send(full, other)
    assert client.counts(full, other) == before
    assert not follows(client, full, other)
    assert incoming(client, other) == []


def test_user_at_limit_cannot_accept(client, user):
    full, other = user(), user()
    client.send(other, full)  # while full still has room
    fill(client, full, CONNECTION_LIMIT, user)
    with raises(StatusCode.RESOURCE_EXHAUSTED, "CONNECTION_LIMIT_REACHED") as raised:
        client.accept(full, other)
    assert raised.info.metadata["user_id"] == full
    assert not client.relationship(full, other).connected
    assert client.relationship(full, other).incoming_request_pending
    assert tally(client, full, other) == [(1, 0, CONNECTION_LIMIT), (0, 1, 0)]


def test_others_cannot_send_to_a_user_at_limit(client, user):
    full, other = user(), user()
    fill(client, full, CONNECTION_LIMIT, user)
    with raises(StatusCode.RESOURCE_EXHAUSTED, "CONNECTION_LIMIT_REACHED") as raised:
        client.send(other, full)
    assert raised.info.metadata["user_id"] == full
    assert tally(client, other) == [(0, 0, 0)]


def test_others_cannot_accept_a_request_from_a_user_at_limit(client, user):
    full, other = user(), user()
    client.send(full, other)  # while full still has room
    fill(client, full, CONNECTION_LIMIT, user)
    with raises(StatusCode.RESOURCE_EXHAUSTED, "CONNECTION_LIMIT_REACHED") as raised:
        client.accept(other, full)
    assert raised.info.metadata["user_id"] == full
    assert not client.relationship(other, full).connected
    assert tally(client, other)[0][2] == 0


def test_limit_is_reached_exactly_at_the_configured_number(client, user):
    hub = user()
    fill(client, hub, CONNECTION_LIMIT - 1, user)
    last = user()
    client.send(last, hub)
    client.accept(hub, last)  # the LIMIT-th connection is allowed
    assert tally(client, hub)[0][2] == CONNECTION_LIMIT
    with raises(StatusCode.RESOURCE_EXHAUSTED, "CONNECTION_LIMIT_REACHED"):
        client.send(user(), hub)


def test_pending_requests_do_not_count_toward_the_limit(client, user):
    hub = user()
    targets = [user() for _ in range(CONNECTION_LIMIT)]
    askers = [user() for _ in range(CONNECTION_LIMIT)]
    for target in targets:
        client.send(hub, target)
    for asker in askers:
        client.send(asker, hub)
    assert tally(client, hub) == [(CONNECTION_LIMIT, CONNECTION_LIMIT, 0)]
    # with LIMIT pending each way and no connections, hub still sends and accepts
    assert client.send(hub, user()).created
    for asker in askers:
        client.accept(hub, asker)
    assert tally(client, hub)[0][2] == CONNECTION_LIMIT


def test_connected_users_at_limit_still_get_idempotent_answers(client, user):
    full = user()
    [buddy, *_] = fill(client, full, CONNECTION_LIMIT, user)
    again = client.send(full, buddy)
    assert (again.state, again.created) == (CONNECTED, False)
    assert client.accept(full, buddy).connected_at == again.connected_at


def test_after_remove_connection_user_at_limit_can_connect_again(client, user):
    full, newcomer = user(), user()
    [first, *_] = fill(client, full, CONNECTION_LIMIT, user)
    with raises(StatusCode.RESOURCE_EXHAUSTED, "CONNECTION_LIMIT_REACHED"):
        client.send(newcomer, full)
    assert remove(client, full, first) is True
    assert client.send(newcomer, full).created
    client.accept(full, newcomer)
    assert tally(client, full)[0][2] == CONNECTION_LIMIT
    assert newcomer in connection_ids(client, full)


def test_crossing_request_checks_the_senders_limit(client, user):
    full, other = user(), user()
    client.send(other, full)  # pending while full has room
    fill(client, full, CONNECTION_LIMIT, user)
    with raises(StatusCode.RESOURCE_EXHAUSTED, "CONNECTION_LIMIT_REACHED") as raised:
        client.send(full, other)
    assert raised.info.metadata["user_id"] == full
    assert not client.relationship(full, other).connected
    assert client.relationship(full, other).incoming_request_pending  # nothing changed


def test_crossing_request_checks_the_other_users_limit(client, user):
    full, other = user(), user()
    client.send(full, other)  # pending while full has room
    fill(client, full, CONNECTION_LIMIT, user)
    with raises(StatusCode.RESOURCE_EXHAUSTED, "CONNECTION_LIMIT_REACHED") as raised:
        client.send(other, full)
    assert raised.info.metadata["user_id"] == full
    assert not client.relationship(other, full).connected
    assert tally(client, other) == [(1, 0, 0)]
