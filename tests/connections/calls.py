"""Helpers shared by the tests in this package."""

from __future__ import annotations

import uuid

from socialgraph.v1 import social_graph_pb2 as pb

from ..support import Client

PENDING = pb.CONNECTION_STATE_PENDING
CONNECTED = pb.CONNECTION_STATE_CONNECTED


def decline(client: Client, recipient: str, requester: str) -> bool:
    return client.graph.DeclineConnectionRequest(
        pb.DeclineConnectionRequestRequest(recipient_id=recipient, requester_id=requester)
    ).removed


def cancel(client: Client, requester: str, recipient: str) -> bool:
    return client.graph.CancelConnectionRequest(
        pb.CancelConnectionRequestRequest(requester_id=requester, recipient_id=recipient)
    ).removed


def remove(client: Client, user_id: str, other: str) -> bool:
    return client.graph.RemoveConnection(
        pb.RemoveConnectionRequest(user_id=user_id, other_user_id=other)
    ).removed


def incoming(client: Client, user_id: str) -> list:
    return list(
        client.graph.ListIncomingConnectionRequests(
            pb.ListIncomingConnectionRequestsRequest(user_id=user_id)
        ).requests
    )


def outgoing(client: Client, user_id: str) -> list:
    return list(
        client.graph.ListOutgoingConnectionRequests(
            pb.ListOutgoingConnectionRequestsRequest(user_id=user_id)
        ).requests
    )


def connections_page(client: Client, user_id: str, viewer: str = "", page_size: int = 0, token: str = ""):
    return client.graph.ListConnections(
        pb.ListConnectionsRequest(user_id=user_id, viewer_id=viewer, page_size=page_size, page_token=token)
    )


def connection_ids(client: Client, user_id: str, viewer: str = "") -> list[str]:
    return [u.user_id for u in connections_page(client, user_id, viewer).users]


def mutual(client: Client, a: str, b: str, limit: int = 0) -> pb.GetMutualConnectionsResponse:
    return client.graph.GetMutualConnections(
        pb.GetMutualConnectionsRequest(user_id=a, other_user_id=b, limit=limit)
    )


def feed(client: Client, user_id: str, page_size: int = 0, token: str = "") -> pb.ListFeedSourcesResponse:
    return client.graph.ListFeedSources(
        pb.ListFeedSourcesRequest(user_id=user_id, page_size=page_size, page_token=token)
    )


def feed_map(client: Client, user_id: str) -> dict[str, bool]:
    return {s.author_id: s.include_private for s in feed(client, user_id).sources}


def tally(client: Client, *users: str) -> list[tuple[int, int, int]]:
    """(incoming_requests, outgoing_requests, connections) per user."""
    return [(c.incoming_requests, c.outgoing_requests, c.connections) for c in client.counts(*users)]


def follows(client: Client, a: str, b: str) -> bool:
    return client.relationship(a, b).following


def fill(client: Client, user_id: str, n: int, make_user) -> list[str]:
    """Connects ``user_id`` with ``n`` fresh users; returns them oldest first."""
    others = [make_user() for _ in range(n)]
    for other in others:
        client.connect(other, user_id)
    return others


def without_other_id(relationship) -> dict:
    return {f.name: v for f, v in relationship.ListFields() if f.name != "other_user_id"}


def is_uuid7(value: str) -> bool:
    parsed = uuid.UUID(value)
    return str(parsed) == value and parsed.version == 7 and value[14] == "7"
