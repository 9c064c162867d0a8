"""Consistency tokens through the API, on every backend: every write answers
with one, every read takes one, and a token that is not this database's is
refused."""

from __future__ import annotations

import uuid

import pytest
from grpc import StatusCode

from socialgraph.v1 import admin_pb2 as apb
from socialgraph.v1 import common_pb2
from socialgraph.v1 import social_graph_pb2 as pb
from storage.positions import encode_token

from .support import raises


def fresh(token: str) -> common_pb2.Consistency:
    return common_pb2.Consistency(at_least_as_fresh=token)


def test_every_write_answers_with_a_token_that_grows(client, user):
    a, b, moderator = user(), user(), user()
    tokens = [
        client.follow(a, b).consistency_token,
        client.graph.Unfollow(pb.UnfollowRequest(follower_id=a, followee_id=b)).consistency_token,
        client.send(a, b).consistency_token,
        client.accept(b, a).consistency_token,
        client.graph.RemoveConnection(pb.RemoveConnectionRequest(user_id=a, other_user_id=b)).consistency_token,
        client.block(a, b).consistency_token,
        client.graph.Unblock(pb.UnblockRequest(blocker_id=a, blocked_id=b)).consistency_token,
        client.graph.ReportUser(
            pb.ReportUserRequest(reporter_id=a, reported_id=b, reason=common_pb2.REPORT_REASON_SPAM)
        ).consistency_token,
        client.admin.UpsertUser(
            apb.UpsertUserRequest(user=common_pb2.User(user_id=moderator, role=common_pb2.ROLE_MODERATOR))
        ).consistency_token,
        client.admin.DeleteUser(apb.DeleteUserRequest(user_id=b)).consistency_token,
    ]
    assert all(tokens), tokens
    assert len(set(tokens)) == len(tokens)
    # Each names a later state than the one before it; any read takes the last.
    relationship = client.graph.GetRelationship(
        pb.GetRelationshipRequest(user_id=a, other_user_id=b, consistency=fresh(tokens[-1]))
    ).relationship
    assert not (relationship.following or relationship.followed_by or relationship.blocking)


def test_reads_with_a_token_or_fully_consistent_see_the_write(client, user):
    a, b = user(), user()
    assert client.relationship(a, b).following is False  # cached before the write
    token = client.follow(a, b).consistency_token
    for consistency in (fresh(token), common_pb2.Consistency(fully_consistent=True)):
        assert client.graph.GetRelationship(
            pb.GetRelationshipRequest(user_id=a, other_user_id=b, consistency=consistency)
        ).relationship.following
        counts = client.graph.GetCounts(pb.GetCountsRequest(user_ids=[b], consistency=consistency)).counts
        assert counts[0].followers == 1
        followers = client.graph.ListFollowers(pb.ListFollowersRequest(user_id=b, consistency=consistency)).users
        assert [u.user_id for u in followers] == [a]


OTHER_DATABASE = encode_token(uuid.uuid4().hex, 1)
READS = [
    lambda c, u, cons: c.graph.GetRelationship(
        pb.GetRelationshipRequest(user_id=u(), other_user_id=u(), consistency=cons)
    ),
    lambda c, u, cons: c.graph.BatchGetRelationships(
        pb.BatchGetRelationshipsRequest(user_id=u(), other_user_ids=[u()], consistency=cons)
    ),
    lambda c, u, cons: c.graph.GetCounts(pb.GetCountsRequest(user_ids=[u()], consistency=cons)),
    lambda c, u, cons: c.graph.CanInteract(pb.CanInteractRequest(user_id=u(), other_user_id=u(), consistency=cons)),
    lambda c, u, cons: c.graph.FilterInteractable(pb.FilterInteractableRequest(user_id=u(), consistency=cons)),
    lambda c, u, cons: c.graph.ListFollowers(pb.ListFollowersRequest(user_id=u(), consistency=cons)),
    lambda c, u, cons: c.graph.ListBlocked(pb.ListBlockedRequest(user_id=u(), consistency=cons)),
    lambda c, u, cons: c.graph.ListFeedSources(pb.ListFeedSourcesRequest(user_id=u(), consistency=cons)),
    lambda c, u, cons: c.graph.ListIncomingConnectionRequests(
        pb.ListIncomingConnectionRequestsRequest(user_id=u(), consistency=cons)
    ),
    lambda c, u, cons: c.graph.GetMutualConnections(
        pb.GetMutualConnectionsRequest(user_id=u(), other_user_id=u(), consistency=cons)
    ),
    lambda c, u, cons: c.admin.GetStats(apb.GetStatsRequest(consistency=cons)),
]


@pytest.mark.parametrize("token", ["", "not a token", "AAAA", OTHER_DATABASE, OTHER_DATABASE[:-2]])
@pytest.mark.parametrize("read", READS)
def test_a_token_that_is_not_this_databases_is_refused(client, user, read, token):
    with raises(StatusCode.INVALID_ARGUMENT, "INVALID_CONSISTENCY_TOKEN") as raised:
        read(client, user, fresh(token))
    assert raised.info.metadata["field"] == "consistency.at_least_as_fresh"


def test_safety_checks_answer_from_one_source_at_one_freshness(tmp_path):
    """Two processes' caches over one database; the first keeps entries for
    a long bound. After the second blocks, every safety check of the first
    gives the same answer for the same consistency: all from its cache by
    default, all from SQL with fully_consistent."""
    from cache import cached_readers
    from ratelimit import InProcessLimiter, parse_windows
    from server.rules import Consistency, Graph, GraphError, Policy
    from storage import open_storage
    from storage.migrate import upgrade

    url = f"sqlite:///{tmp_path}/one-source.db"
    opened = [open_storage(url) for _ in range(2)]
    upgrade(opened[0])
    limiter = InProcessLimiter(parse_windows("1000/1h"))
    one, two = (Graph(s, limiter, Policy(), **cached_readers(s, max_staleness=600)) for s in opened)
    try:
        a, b, c = (str(uuid.uuid4()) for _ in range(3))
        two.follow(c, b)

        def checks(consistency):
            try:
                one.list_followers(b, 10, "", a, consistency)
                listed = True
            except GraphError:
                listed = False
            return (
                one.can_interact(a, b, consistency),
                one.get_relationship(a, b, consistency).can_interact,
                one.filter_interactable(a, [b], consistency) == [b],
                one.filter_interactable(a, [b, c, b], consistency) == [b, c, b],  # a batch: blocks alone on a miss
                listed,
            )

        assert checks(Consistency()) == (True,) * 5  # now in the first process's cache
        two.block(b, a, "")
        assert checks(Consistency()) == (True,) * 5  # stale, but all alike
        assert checks(Consistency(fully_consistent=True)) == (False,) * 5
        assert checks(Consistency(at_least_as_fresh=two.consistency_token())) == (False,) * 5
    finally:
        for storage in opened:
            storage.close()
