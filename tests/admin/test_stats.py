"""GetStats."""

from __future__ import annotations

from .calls import (
    MEMBER,
    RESOLVE_ACTIONED,
    TOTALS,
    _user_with_everything,
    changes,
    delete_user,
    difference,
    report,
    resolve,
    staff,
    totals,
)


def test_stats_count_a_follow(client, user):
    before = totals(client)
    client.follow(user(), user())
    assert difference(before, totals(client)) == changes(follows=1)


def test_stats_count_a_connection_and_its_follows(client, user):
    before = totals(client)
    client.connect(user(), user())
    assert difference(before, totals(client)) == changes(connections=1, follows=2)


def test_stats_count_a_pending_request_and_its_follow(client, user):
    before = totals(client)
    client.send(user(), user())
    assert difference(before, totals(client)) == changes(pending_requests=1, follows=1)


def test_stats_count_a_block(client, user):
    before = totals(client)
    client.block(user(), user())
    assert difference(before, totals(client)) == changes(blocks=1)


def test_stats_count_an_open_report(client, user):
    before = totals(client)
    report(client, user(), user())
    assert difference(before, totals(client)) == changes(open_reports=1)


def test_stats_count_a_registered_user(client, user):
    before = totals(client)
    client.upsert(user(), role=MEMBER)
    assert difference(before, totals(client)) == changes(users=1)


def test_stats_do_not_count_a_second_upsert(client, user):
    a = user()
    client.upsert(a, role=MEMBER)
    before = totals(client)
    client.upsert(a, role=MEMBER, display_name="again")
    assert difference(before, totals(client)) == changes()


def test_stats_count_everything_created_together(client, user):
    before = totals(client)
    client.follow(user(), user())
    client.connect(user(), user())
    client.send(user(), user())
    client.block(user(), user())
    report(client, user(), user())
    client.upsert(user(), role=MEMBER)
    assert difference(before, totals(client)) == changes(
        users=1, follows=4, connections=1, pending_requests=1, blocks=1, open_reports=1
    )


def test_stats_resolving_a_report_closes_it(client, user):
    moderator = staff(client, user)
    made = report(client, user(), user())
    before = totals(client)
    resolve(client, made.report_id, moderator, RESOLVE_ACTIONED)
    assert difference(before, totals(client)) == changes(open_reports=-1)


def test_stats_block_cascade_removes_follows_and_connection(client, user):
    a, b = user(), user()
    client.connect(a, b)
    before = totals(client)
    client.block(a, b)
    assert difference(before, totals(client)) == changes(blocks=1, follows=-2, connections=-1)


def test_stats_delete_user(client, user):
    people = _user_with_everything(client, user)
    client.upsert(people["d"], role=MEMBER)
    before = totals(client)
    delete_user(client, people["d"])
    assert difference(before, totals(client)) == changes(
        users=-1, follows=-6, connections=-1, pending_requests=-2, blocks=-2
    )


def test_stats_last_24h_never_exceed_totals(client, user):
    client.follow(user(), user())
    stats = totals(client)
    for name in TOTALS:
        assert stats["last_24h"][name] <= stats["total"][name], name
