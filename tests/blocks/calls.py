"""Helpers shared by the tests in this package."""

from __future__ import annotations

import uuid

from socialgraph.v1 import common_pb2
from socialgraph.v1 import social_graph_pb2 as pb

MEMBER, MODERATOR, ADMIN = common_pb2.ROLE_MEMBER, common_pb2.ROLE_MODERATOR, common_pb2.ROLE_ADMIN


def list_blocked(client, user_id: str, page_size: int = 0, page_token: str = ""):
    return client.graph.ListBlocked(
        pb.ListBlockedRequest(user_id=user_id, page_size=page_size, page_token=page_token)
    )


def blocked_ids(client, user_id: str) -> list[str]:
    return [b.blocked_id for b in list_blocked(client, user_id).blocks]


def followers(client, user_id: str, viewer_id: str = ""):
    return client.graph.ListFollowers(pb.ListFollowersRequest(user_id=user_id, viewer_id=viewer_id))


def following(client, user_id: str, viewer_id: str = ""):
    return client.graph.ListFollowing(pb.ListFollowingRequest(user_id=user_id, viewer_id=viewer_id))


def connections(client, user_id: str, viewer_id: str = ""):
    return client.graph.ListConnections(pb.ListConnectionsRequest(user_id=user_id, viewer_id=viewer_id))


LISTS = (followers, following, connections)


def ids(response) -> list[str]:
    return [u.user_id for u in response.users]


def can_interact(client, a: str, b: str) -> bool:
    return client.graph.CanInteract(pb.CanInteractRequest(user_id=a, other_user_id=b)).can_interact


def filter_interactable(client, viewer: str, candidates: list[str]) -> list[str]:
    return list(
        client.graph.FilterInteractable(
            pb.FilterInteractableRequest(user_id=viewer, candidate_ids=candidates)
        ).allowed_ids
    )


def is_uuid7(value: str) -> bool:
    parsed = uuid.UUID(value)
    return parsed.version == 7 and str(parsed) == value


def nothing_between(rel) -> bool:
    return not (
        rel.following
        or rel.followed_by
        or rel.connected
        or rel.outgoing_request_pending
        or rel.incoming_request_pending
    )
