"""ListConnections: order, paging and viewers (B4)."""

from __future__ import annotations

from grpc import StatusCode

from ..conftest import CONNECTION_LIMIT
from ..support import raises
from .calls import (
    connection_ids,
    connections_page,
    fill,
)


def test_list_connections_newest_first_with_since(client, user):
    hub = user()
    others = [user() for _ in range(4)]
    times = []
    for other in others:
        client.send(other, hub)
        times.append(client.accept(hub, other).connected_at)
    page = connections_page(client, hub)
    assert [u.user_id for u in page.users] == others[::-1]
    assert [u.since for u in page.users] == times[::-1]
    assert page.next_page_token == ""


def test_list_connections_pages_without_repeats(client, user):
    hub = user()
    others = fill(client, hub, CONNECTION_LIMIT, user)
    seen, token = [], ""
    while True:
        page = connections_page(client, hub, page_size=2, token=token)
        assert len(page.users) <= 2
        seen += [u.user_id for u in page.users]
        token = page.next_page_token
        if not token:
            break
    assert seen == others[::-1]


def test_list_connections_carry_display_name_and_avatar(client, user):
    hub, named = user(), user()
    client.upsert(named, display_name="Named", avatar_url="https://example.test/a.png")
    client.connect(named, hub)
    [entry] = connections_page(client, hub).users
    assert (entry.display_name, entry.avatar_url) == ("Named", "https://example.test/a.png")


def test_list_connections_viewer_blocked_by_owner_is_refused(client, user):
    owner, viewer = user(), user()
    client.connect(user(), owner)
    client.block(owner, viewer)
    with raises(StatusCode.PERMISSION_DENIED, "BLOCKED"):
        connections_page(client, owner, viewer=viewer)


def test_list_connections_viewer_blocking_owner_is_refused(client, user):
    owner, viewer = user(), user()
    client.connect(user(), owner)
    client.block(viewer, owner)
    with raises(StatusCode.PERMISSION_DENIED, "BLOCKED"):
        connections_page(client, owner, viewer=viewer)


def test_list_connections_leaves_out_users_blocked_with_viewer(client, user):
    owner, viewer = user(), user()
    visible, blocked_by_viewer, blocking_viewer = user(), user(), user()
    for other in (visible, blocked_by_viewer, blocking_viewer):
        client.connect(other, owner)
    client.block(viewer, blocked_by_viewer)
    client.block(blocking_viewer, viewer)
    assert connection_ids(client, owner, viewer=viewer) == [visible]
    # without a viewer, and for the owner themself, everyone is listed
    assert len(connection_ids(client, owner)) == 3
    assert len(connection_ids(client, owner, viewer=owner)) == 3


def test_list_connections_unrelated_viewer_sees_everything(client, user):
    owner, viewer = user(), user()
    others = fill(client, owner, 2, user)
    assert connection_ids(client, owner, viewer=viewer) == others[::-1]
