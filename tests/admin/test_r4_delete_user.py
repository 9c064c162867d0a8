"""R4: DeleteUser."""

from __future__ import annotations

from grpc import StatusCode

from socialgraph.v1 import social_graph_pb2 as pb

from ..support import ZERO, counters, raises, zero
from .calls import (
    MEMBER,
    MODERATOR,
    _user_with_everything,
    all_reports,
    delete_user,
    get_user,
    removed,
    report,
    staff,
)


def test_delete_user_returns_removed_counts(client, user):
    people = _user_with_everything(client, user)
    response = delete_user(client, people["d"])
    # follows: d->a, b->d, d->c, c->d, d->e, f->d
    assert removed(response) == (6, 1, 2, 2)


def test_delete_user_zeroes_their_counts(client, user):
    people = _user_with_everything(client, user)
    d = people["d"]
    assert counters(client.counts(d)[0]) == {
        "followers": 3,
        "following": 3,
        "connections": 1,
        "incoming": 1,
        "outgoing": 1,
        "blocked": 1,
    }
    delete_user(client, d)
    assert counters(client.counts(d)[0]) == ZERO


def test_delete_user_drops_the_other_users_counters(client, user):
    people = _user_with_everything(client, user)
    delete_user(client, people["d"])
    a, b, c, e, f, g, h = (people[n] for n in "abcefgh")
    counts = dict(zip("abcefgh", client.counts(a, b, c, e, f, g, h), strict=False))
    for name, count in counts.items():
        assert counters(count) == ZERO, name


def test_delete_user_removes_every_relationship(client, user):
    people = _user_with_everything(client, user)
    d = people["d"]
    delete_user(client, d)
    for name in "abcefgh":
        rel = client.relationship(people[name], d)
        assert not (
            rel.following
            or rel.followed_by
            or rel.connected
            or rel.outgoing_request_pending
            or rel.incoming_request_pending
            or rel.blocking
            or rel.blocked_by
        ), name
        assert rel.can_interact, name


def test_delete_user_removes_them_from_other_users_lists(client, user):
    people = _user_with_everything(client, user)
    d = people["d"]
    delete_user(client, d)
    graph = client.graph
    assert list(graph.ListFollowers(pb.ListFollowersRequest(user_id=people["a"])).users) == []
    assert list(graph.ListFollowing(pb.ListFollowingRequest(user_id=people["b"])).users) == []
    assert list(graph.ListConnections(pb.ListConnectionsRequest(user_id=people["c"])).users) == []
    incoming = graph.ListIncomingConnectionRequests(pb.ListIncomingConnectionRequestsRequest(user_id=people["e"]))
    outgoing = graph.ListOutgoingConnectionRequests(pb.ListOutgoingConnectionRequestsRequest(user_id=people["f"]))
    assert list(incoming.requests) == [] and list(outgoing.requests) == []
    assert list(graph.ListBlocked(pb.ListBlockedRequest(user_id=people["h"])).blocks) == []


def test_delete_user_removes_their_own_lists(client, user):
    people = _user_with_everything(client, user)
    d = people["d"]
    delete_user(client, d)
    graph = client.graph
    assert list(graph.ListFollowers(pb.ListFollowersRequest(user_id=d)).users) == []
    assert list(graph.ListFollowing(pb.ListFollowingRequest(user_id=d)).users) == []
    assert list(graph.ListConnections(pb.ListConnectionsRequest(user_id=d)).users) == []
    assert list(graph.ListBlocked(pb.ListBlockedRequest(user_id=d)).blocks) == []


def test_delete_user_leaves_unrelated_edges_alone(client, user):
    d, a, b = user(), user(), user()
    client.connect(a, b)
    client.follow(d, a)
    delete_user(client, d)
    [ca, cb] = client.counts(a, b)
    assert counters(ca) == zero(followers=1, following=1, connections=1)
    assert counters(cb) == zero(followers=1, following=1, connections=1)


def test_delete_user_removes_the_user_record(client, user):
    d = user()
    client.upsert(d, role=MEMBER, display_name="Gone")
    delete_user(client, d)
    with raises(StatusCode.NOT_FOUND, "USER_NOT_FOUND"):
        get_user(client, d)


def test_delete_user_keeps_reports_about_them(client, user):
    moderator = staff(client, user)
    d, reporter = user(), user()
    made = report(client, reporter, d, details="about d")
    made_by_d = report(client, d, reporter, details="by d")
    delete_user(client, d)
    open_reports = {r.report_id: r for r in all_reports(client, moderator)}
    assert made.report_id in open_reports
    assert open_reports[made.report_id] == made
    assert made_by_d.report_id in open_reports


def test_deleting_again_returns_zeros(client, user):
    people = _user_with_everything(client, user)
    delete_user(client, people["d"])
    assert removed(delete_user(client, people["d"])) == (0, 0, 0, 0)


def test_deleting_an_unknown_user_returns_zeros(client, user):
    assert removed(delete_user(client, user())) == (0, 0, 0, 0)


def test_deleted_user_can_take_part_again(client, user):
    d, a = user(), user()
    client.block(a, d)
    delete_user(client, d)
    assert client.follow(d, a).created
    [cd, ca] = client.counts(d, a)
    assert counters(cd) == zero(following=1)
    assert counters(ca) == zero(followers=1)


def test_deleted_staff_can_be_blocked_again(client, user):
    d, a = user(), user()
    client.upsert(d, role=MODERATOR)
    delete_user(client, d)
    assert client.block(a, d).created
