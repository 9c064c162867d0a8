"""socialgraph.v1.SocialGraphService: decode, validate, call the rules
layer, encode. No business rule lives here."""

from __future__ import annotations

from typing import TypedDict, TypeVar

import grpc

from socialgraph.v1 import common_pb2
from socialgraph.v1 import social_graph_pb2 as pb
from socialgraph.v1 import social_graph_pb2_grpc as pb_grpc
from storage.types import ConnectionRequest, RelatedUser, ReportReason

from .. import convert
from .. import validate as v
from ..errors import translate_errors
from ..rules import Consistency, Graph, Page
from ..rules.paging import page_size


@translate_errors
class SocialGraphServicer(pb_grpc.SocialGraphServiceServicer):
    def __init__(self, graph: Graph) -> None:
        self._graph = graph

    # Follows

    def Follow(self, request: pb.FollowRequest, context: grpc.ServicerContext) -> pb.FollowResponse:
        created, since = self._graph.follow(
            v.user_id(request.follower_id, "follower_id"), v.user_id(request.followee_id, "followee_id")
        )
        return pb.FollowResponse(
            created=created, since=convert.timestamp(since), consistency_token=self._graph.consistency_token()
        )

    def Unfollow(self, request: pb.UnfollowRequest, context: grpc.ServicerContext) -> pb.UnfollowResponse:
        removed = self._graph.unfollow(
            v.user_id(request.follower_id, "follower_id"), v.user_id(request.followee_id, "followee_id")
        )
        return pb.UnfollowResponse(removed=removed, consistency_token=self._graph.consistency_token())

    def RemoveFollower(
        self, request: pb.RemoveFollowerRequest, context: grpc.ServicerContext
    ) -> pb.RemoveFollowerResponse:
        removed = self._graph.remove_follower(
            v.user_id(request.user_id, "user_id"), v.user_id(request.follower_id, "follower_id")
        )
        return pb.RemoveFollowerResponse(removed=removed, consistency_token=self._graph.consistency_token())

    def ListFollowers(
        self, request: pb.ListFollowersRequest, context: grpc.ServicerContext
    ) -> pb.ListFollowersResponse:
        page = self._graph.list_followers(*_user_list_args(request))
        return _users(pb.ListFollowersResponse(), page)

    def ListFollowing(
        self, request: pb.ListFollowingRequest, context: grpc.ServicerContext
    ) -> pb.ListFollowingResponse:
        page = self._graph.list_following(*_user_list_args(request))
        return _users(pb.ListFollowingResponse(), page)

    # Connections

    def SendConnectionRequest(
        self, request: pb.SendConnectionRequestRequest, context: grpc.ServicerContext
    ) -> pb.SendConnectionRequestResponse:
        result = self._graph.send_connection_request(
            v.user_id(request.requester_id, "requester_id"),
            v.user_id(request.recipient_id, "recipient_id"),
            v.text(request.message, "message", self._graph.policy.message_max),
        )
        response = pb.SendConnectionRequestResponse(
            state=pb.ConnectionState.ValueType(result.state),
            created=result.created,
            consistency_token=self._graph.consistency_token(),
        )
        if result.request is not None:
            response.request.CopyFrom(convert.connection_request(result.request))
        if result.connected_us is not None:
            response.connected_at.CopyFrom(convert.timestamp(result.connected_us))
        return response

    def AcceptConnectionRequest(
        self, request: pb.AcceptConnectionRequestRequest, context: grpc.ServicerContext
    ) -> pb.AcceptConnectionRequestResponse:
        connected = self._graph.accept_connection_request(
            v.user_id(request.recipient_id, "recipient_id"), v.user_id(request.requester_id, "requester_id")
        )
        return pb.AcceptConnectionRequestResponse(
            connected_at=convert.timestamp(connected), consistency_token=self._graph.consistency_token()
        )

    def DeclineConnectionRequest(
        self, request: pb.DeclineConnectionRequestRequest, context: grpc.ServicerContext
    ) -> pb.DeclineConnectionRequestResponse:
        removed = self._graph.decline_connection_request(
            v.user_id(request.recipient_id, "recipient_id"), v.user_id(request.requester_id, "requester_id")
        )
        return pb.DeclineConnectionRequestResponse(removed=removed, consistency_token=self._graph.consistency_token())

    def CancelConnectionRequest(
        self, request: pb.CancelConnectionRequestRequest, context: grpc.ServicerContext
    ) -> pb.CancelConnectionRequestResponse:
        removed = self._graph.cancel_connection_request(
            v.user_id(request.requester_id, "requester_id"), v.user_id(request.recipient_id, "recipient_id")
        )
        return pb.CancelConnectionRequestResponse(removed=removed, consistency_token=self._graph.consistency_token())

    def RemoveConnection(
        self, request: pb.RemoveConnectionRequest, context: grpc.ServicerContext
    ) -> pb.RemoveConnectionResponse:
        removed = self._graph.remove_connection(
            v.user_id(request.user_id, "user_id"), v.user_id(request.other_user_id, "other_user_id")
        )
        return pb.RemoveConnectionResponse(removed=removed, consistency_token=self._graph.consistency_token())

    def ListConnections(
        self, request: pb.ListConnectionsRequest, context: grpc.ServicerContext
    ) -> pb.ListConnectionsResponse:
        page = self._graph.list_connections(*_user_list_args(request))
        return _users(pb.ListConnectionsResponse(), page)

    def ListIncomingConnectionRequests(
        self, request: pb.ListIncomingConnectionRequestsRequest, context: grpc.ServicerContext
    ) -> pb.ListIncomingConnectionRequestsResponse:
        page = self._graph.list_requests(*_request_list_args(request, incoming=True))
        return pb.ListIncomingConnectionRequestsResponse(**_requests(page))

    def ListOutgoingConnectionRequests(
        self, request: pb.ListOutgoingConnectionRequestsRequest, context: grpc.ServicerContext
    ) -> pb.ListOutgoingConnectionRequestsResponse:
        page = self._graph.list_requests(*_request_list_args(request, incoming=False))
        return pb.ListOutgoingConnectionRequestsResponse(**_requests(page))

    def GetMutualConnections(
        self, request: pb.GetMutualConnectionsRequest, context: grpc.ServicerContext
    ) -> pb.GetMutualConnectionsResponse:
        count, users = self._graph.mutual_connections(
            v.user_id(request.user_id, "user_id"),
            v.user_id(request.other_user_id, "other_user_id"),
            v.mutual_limit(request.limit, self._graph.policy),
            v.consistency(request.consistency),
        )
        return pb.GetMutualConnectionsResponse(
            count=count, users=[convert.related_user(u) for u in users]
        )

    # Blocks

    def Block(self, request: pb.BlockRequest, context: grpc.ServicerContext) -> pb.BlockResponse:
        result = self._graph.block(
            v.user_id(request.blocker_id, "blocker_id"),
            v.user_id(request.blocked_id, "blocked_id"),
            v.text(request.reason, "reason", self._graph.policy.block_reason_max),
        )
        return pb.BlockResponse(
            block=convert.block(result.block),
            created=result.created,
            removed_follows=result.removed.follows,
            removed_connections=result.removed.connections,
            removed_requests=result.removed.requests,
            consistency_token=self._graph.consistency_token(),
        )

    def Unblock(self, request: pb.UnblockRequest, context: grpc.ServicerContext) -> pb.UnblockResponse:
        removed = self._graph.unblock(
            v.user_id(request.blocker_id, "blocker_id"), v.user_id(request.blocked_id, "blocked_id")
        )
        return pb.UnblockResponse(removed=removed, consistency_token=self._graph.consistency_token())

    def ListBlocked(self, request: pb.ListBlockedRequest, context: grpc.ServicerContext) -> pb.ListBlockedResponse:
        page = self._graph.list_blocked(
            v.user_id(request.user_id, "user_id"),
            page_size(request.page_size),
            request.page_token,
            v.consistency(request.consistency),
        )
        return pb.ListBlockedResponse(
            blocks=[convert.block(b) for b in page.items], next_page_token=page.next_page_token
        )

    # Reads

    def GetRelationship(
        self, request: pb.GetRelationshipRequest, context: grpc.ServicerContext
    ) -> pb.GetRelationshipResponse:
        relationship = self._graph.get_relationship(
            v.user_id(request.user_id, "user_id"),
            v.user_id(request.other_user_id, "other_user_id"),
            v.consistency(request.consistency),
        )
        return pb.GetRelationshipResponse(relationship=convert.relationship(relationship))

    def BatchGetRelationships(
        self, request: pb.BatchGetRelationshipsRequest, context: grpc.ServicerContext
    ) -> pb.BatchGetRelationshipsResponse:
        relationships = self._graph.batch_get_relationships(
            v.user_id(request.user_id, "user_id"),
            v.user_ids(request.other_user_ids, "other_user_ids"),
            v.consistency(request.consistency),
        )
        return pb.BatchGetRelationshipsResponse(
            relationships=[convert.relationship(r) for r in relationships]
        )

    def GetCounts(self, request: pb.GetCountsRequest, context: grpc.ServicerContext) -> pb.GetCountsResponse:
        counts = self._graph.get_counts(v.user_ids(request.user_ids, "user_ids"), v.consistency(request.consistency))
        return pb.GetCountsResponse(counts=[convert.counts(c) for c in counts])

    def CanInteract(self, request: pb.CanInteractRequest, context: grpc.ServicerContext) -> pb.CanInteractResponse:
        allowed = self._graph.can_interact(
            v.user_id(request.user_id, "user_id"),
            v.user_id(request.other_user_id, "other_user_id"),
            v.consistency(request.consistency),
        )
        return pb.CanInteractResponse(can_interact=allowed)

    def FilterInteractable(
        self, request: pb.FilterInteractableRequest, context: grpc.ServicerContext
    ) -> pb.FilterInteractableResponse:
        allowed = self._graph.filter_interactable(
            v.user_id(request.user_id, "user_id"),
            v.user_ids(request.candidate_ids, "candidate_ids", v.MAX_FILTER_BATCH, required=False),
            v.consistency(request.consistency),
        )
        return pb.FilterInteractableResponse(allowed_ids=allowed)

    def ListFeedSources(
        self, request: pb.ListFeedSourcesRequest, context: grpc.ServicerContext
    ) -> pb.ListFeedSourcesResponse:
        page = self._graph.list_feed_sources(
            v.user_id(request.user_id, "user_id"),
            page_size(request.page_size),
            request.page_token,
            v.consistency(request.consistency),
        )
        return pb.ListFeedSourcesResponse(
            sources=[pb.FeedSource(author_id=s.author_id, include_private=s.include_private) for s in page.items],
            next_page_token=page.next_page_token,
        )

    # Reports

    def ReportUser(self, request: pb.ReportUserRequest, context: grpc.ServicerContext) -> pb.ReportUserResponse:
        report = self._graph.report_user(
            v.user_id(request.reporter_id, "reporter_id"),
            v.user_id(request.reported_id, "reported_id"),
            v.enum_value(request.reason, "reason", ReportReason),
            v.text(request.details, "details", self._graph.policy.report_details_max),
        )
        return pb.ReportUserResponse(report=convert.report(report), consistency_token=self._graph.consistency_token())


def _user_list_args(
    request: pb.ListFollowersRequest | pb.ListFollowingRequest | pb.ListConnectionsRequest,
) -> tuple[str, int, str, str | None, Consistency]:
    return (
        v.user_id(request.user_id, "user_id"),
        page_size(request.page_size),
        request.page_token,
        v.optional_user_id(request.viewer_id, "viewer_id"),
        v.consistency(request.consistency),
    )


def _request_list_args(
    request: pb.ListIncomingConnectionRequestsRequest | pb.ListOutgoingConnectionRequestsRequest, *, incoming: bool
) -> tuple[str, bool, int, str, Consistency]:
    return (
        v.user_id(request.user_id, "user_id"),
        incoming,
        page_size(request.page_size),
        request.page_token,
        v.consistency(request.consistency),
    )


class _RequestPage(TypedDict):
    requests: list[common_pb2.ConnectionRequest]
    next_page_token: str


_UserList = TypeVar("_UserList", pb.ListFollowersResponse, pb.ListFollowingResponse, pb.ListConnectionsResponse)


def _users(response: _UserList, page: Page[RelatedUser]) -> _UserList:
    convert.add_related_users(response.users, page.items)
    response.next_page_token = page.next_page_token
    return response


def _requests(page: Page[ConnectionRequest]) -> _RequestPage:
    return {
        "requests": [convert.connection_request(r) for r in page.items],
        "next_page_token": page.next_page_token,
    }
