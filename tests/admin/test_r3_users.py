"""R3: UpsertUser and GetUser."""

from __future__ import annotations

import time

from grpc import StatusCode

from socialgraph.v1 import admin_pb2 as apb
from socialgraph.v1 import common_pb2

from ..support import raises
from .calls import (
    ADMIN,
    MEMBER,
    MODERATOR,
    get_user,
)


def test_upsert_stores_role_name_and_avatar(client, user):
    a = user()
    stored = client.upsert(a, role=MODERATOR, display_name="Ada", avatar_url="https://example.test/ada.png")
    assert stored.user_id == a
    assert stored.role == MODERATOR
    assert (stored.display_name, stored.avatar_url) == ("Ada", "https://example.test/ada.png")
    assert stored.created_at.ToMicroseconds() > 0


def test_upsert_created_at_is_now(client, user):
    before = time.time()
    stored = client.upsert(user(), role=MEMBER)
    assert before - 60 <= stored.created_at.ToMicroseconds() / 1e6 <= time.time() + 60


def test_get_user_returns_the_stored_user(client, user):
    a = user()
    stored = client.upsert(a, role=ADMIN, display_name="Root", avatar_url="https://example.test/r.png")
    assert get_user(client, a) == stored


def test_second_upsert_replaces_fields_and_keeps_created_at(client, user):
    a = user()
    first = client.upsert(a, role=MEMBER, display_name="Old", avatar_url="https://example.test/old.png")
    second = client.upsert(a, role=MODERATOR, display_name="New", avatar_url="")
    assert (second.role, second.display_name, second.avatar_url) == (MODERATOR, "New", "")
    assert second.created_at == first.created_at
    assert get_user(client, a) == second


def test_upsert_ignores_created_at_in_the_request(client, user):
    a = user()
    first = client.upsert(a, role=MEMBER)
    request_user = common_pb2.User(user_id=a, role=MEMBER, display_name="x")
    request_user.created_at.FromSeconds(1)
    stored = client.admin.UpsertUser(apb.UpsertUserRequest(user=request_user)).user
    assert stored.created_at == first.created_at


def test_upsert_accepts_any_case_and_returns_canonical_id(client, user):
    a = user()
    stored = client.upsert(a.upper(), role=MEMBER, display_name="Case")
    assert stored.user_id == a
    assert get_user(client, a.upper()).display_name == "Case"


def test_upsert_refuses_unspecified_role(client, user):
    with raises(StatusCode.INVALID_ARGUMENT, "INVALID_ENUM"):
        client.upsert(user(), role=common_pb2.ROLE_UNSPECIFIED)


def test_upsert_refuses_missing_user(client):
    with raises(StatusCode.INVALID_ARGUMENT, "MISSING_FIELD"):
        client.admin.UpsertUser(apb.UpsertUserRequest())


def test_upsert_refuses_invalid_user_id(client):
    with raises(StatusCode.INVALID_ARGUMENT, "INVALID_USER_ID"):
        client.upsert("not-a-uuid", role=MEMBER)


def test_upsert_refuses_too_long_display_name(client, user):
    a = user()
    client.upsert(a, role=MEMBER, display_name="n" * 200)
    with raises(StatusCode.INVALID_ARGUMENT, "FIELD_TOO_LONG"):
        client.upsert(a, role=MEMBER, display_name="n" * 201)
    assert get_user(client, a).display_name == "n" * 200


def test_get_unknown_user_is_not_found(client, user):
    with raises(StatusCode.NOT_FOUND, "USER_NOT_FOUND"):
        get_user(client, user())


def test_get_user_who_only_takes_part_in_the_graph_is_not_found(client, user):
    a, b = user(), user()
    client.follow(a, b)
    with raises(StatusCode.NOT_FOUND, "USER_NOT_FOUND"):
        get_user(client, a)


def test_get_user_with_invalid_id(client):
    with raises(StatusCode.INVALID_ARGUMENT, "INVALID_USER_ID"):
        get_user(client, "nope")
