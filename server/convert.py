"""Domain records to socialgraph.v1 messages."""

from __future__ import annotations

from collections.abc import Iterable

from google.protobuf import json_format
from google.protobuf.internal.containers import RepeatedCompositeFieldContainer
from google.protobuf.timestamp_pb2 import Timestamp

from socialgraph.v1 import common_pb2 as pb
from socialgraph.v1 import watch_pb2
from storage import types

from .rules.events import encode_cursor


def timestamp(us: int) -> Timestamp:
    return Timestamp(seconds=us // 1_000_000, nanos=(us % 1_000_000) * 1000)


def user(record: types.User) -> pb.User:
    return pb.User(
        user_id=record.user_id,
        role=pb.Role.ValueType(record.role),
        display_name=record.display_name,
        avatar_url=record.avatar_url,
        created_at=timestamp(record.created_us),
    )


def related_user(record: types.RelatedUser) -> pb.RelatedUser:
    return pb.RelatedUser(
        user_id=record.user_id,
        since=timestamp(record.since_us),
        display_name=record.display_name,
        avatar_url=record.avatar_url,
    )


def add_related_users(
    target: RepeatedCompositeFieldContainer[pb.RelatedUser], records: Iterable[types.RelatedUser]
) -> None:
    """Appends ``related_user`` of each record to a response's list: built in
    place, not built and then copied in (a page holds up to 1000)."""
    add = target.add
    for record in records:
        message = add(user_id=record.user_id, display_name=record.display_name, avatar_url=record.avatar_url)
        seconds, micros = divmod(record.since_us, 1_000_000)
        message.since.seconds = seconds
        message.since.nanos = micros * 1000


def connection_request(record: types.ConnectionRequest) -> pb.ConnectionRequest:
    return pb.ConnectionRequest(
        request_id=record.request_id,
        requester_id=record.requester_id,
        recipient_id=record.recipient_id,
        message=record.message,
        created_at=timestamp(record.created_us),
    )


def block(record: types.Block) -> pb.Block:
    return pb.Block(
        block_id=record.block_id,
        blocker_id=record.blocker_id,
        blocked_id=record.blocked_id,
        reason=record.reason,
        created_at=timestamp(record.created_us),
    )


def relationship(record: types.Relationship) -> pb.Relationship:
    return pb.Relationship(
        other_user_id=record.other_user_id,
        can_interact=record.can_interact,
        mutual_connections_count=record.mutual_connections_count,
        **{flag: getattr(record, flag) for flag in types.FLAGS},
    )


def counts(record: types.Counts) -> pb.Counts:
    return pb.Counts(
        user_id=record.user_id,
        followers=record.followers,
        following=record.following,
        connections=record.connections,
        incoming_requests=record.incoming_requests,
        outgoing_requests=record.outgoing_requests,
        blocked=record.blocked,
    )


def report(record: types.Report) -> pb.Report:
    message = pb.Report(
        report_id=record.report_id,
        reporter_id=record.reporter_id,
        reported_id=record.reported_id,
        reason=pb.ReportReason.ValueType(record.reason),
        details=record.details,
        status=pb.ReportStatus.ValueType(record.status),
        resolved_by=record.resolved_by,
        note=record.note,
        created_at=timestamp(record.created_us),
    )
    if record.resolved_us is not None:
        message.resolved_at.CopyFrom(timestamp(record.resolved_us))
    return message


def event(record: types.Event, consistency_token: str = "") -> watch_pb2.Event:
    """The stored payload is the kind's fields in the message's JSON form."""
    message = watch_pb2.Event(
        event_id=record.event_id,
        cursor=encode_cursor(record.seq),
        kind=watch_pb2.EventKind.ValueType(record.kind),
        actor_id=record.actor_id,
        subject_id=record.subject_id,
        occurred_at=timestamp(record.occurred_us),
        consistency_token=consistency_token,
    )
    return json_format.ParseDict(record.payload, message)
