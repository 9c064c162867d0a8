"""Helpers over the generated stubs: a channel with the published service
config, typed errors, paging to the end of a list, and consistency tokens
carried from writes into later reads.

    from socialgraph.client import Session, connect, decode_error

    with connect("127.0.0.1:50051") as client:
        session = Session()
        session.observe(client.graph.Follow(pb.FollowRequest(follower_id=alice, followee_id=bob)))
        client.graph.GetRelationship(
            pb.GetRelationshipRequest(user_id=alice, other_user_id=bob, consistency=session.consistency())
        )
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from importlib import resources
from typing import Any, Protocol, TypeVar

import grpc
from google.rpc import error_details_pb2, status_pb2

from socialgraph.v1 import admin_pb2_grpc, common_pb2, error_reason_pb2, social_graph_pb2_grpc

DOMAIN = "socialgraph.v1"

# The published service config: every call of both services gets a 10 s
# deadline (a call's own timeout may shorten it, never lengthen it: gRPC takes
# the earlier), and UNAVAILABLE (nothing was written; the service's writes are
# idempotent) is retried up to 3 times with backoff.
SERVICE_CONFIG: dict[str, Any] = json.loads(
    resources.files(__package__).joinpath("service_config.json").read_text()
)

ChannelOptions = Sequence[tuple[str, Any]]


def channel_options(service_config: Mapping[str, Any] | None = None) -> list[tuple[str, Any]]:
    """Channel arguments that apply a service config (the published one by
    default); also for ``grpc.aio`` channels."""
    config = SERVICE_CONFIG if service_config is None else service_config
    return [("grpc.service_config", json.dumps(config)), ("grpc.enable_retries", 1)]


def dial(
    address: str,
    *,
    credentials: grpc.ChannelCredentials | None = None,
    service_config: Mapping[str, Any] | None = None,
    options: ChannelOptions = (),
) -> grpc.Channel:
    """A channel to the service at ``host:port`` with the service config
    (retries, deadlines). Plaintext unless ``credentials`` are given; later
    ``options`` win over the service config's."""
    merged = [*channel_options(service_config), *options]
    if credentials is None:
        return grpc.insecure_channel(address, options=merged)
    return grpc.secure_channel(address, credentials, options=merged)


@dataclasses.dataclass(frozen=True)
class Client:
    """Both services' stubs over one channel; closing it closes the channel."""

    channel: grpc.Channel
    graph: social_graph_pb2_grpc.SocialGraphServiceStub
    admin: admin_pb2_grpc.AdminServiceStub

    def close(self) -> None:
        self.channel.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def connect(address: str, **dial_args: Any) -> Client:
    """``dial`` and the stubs of both services."""
    channel = dial(address, **dial_args)
    return Client(
        channel=channel,
        graph=social_graph_pb2_grpc.SocialGraphServiceStub(channel),
        admin=admin_pb2_grpc.AdminServiceStub(channel),
    )


@dataclasses.dataclass(frozen=True)
class Error:
    """A failed call, decoded.

    ``reason`` is the ``ErrorReason`` value of the ErrorInfo's reason
    (``ERROR_REASON_UNSPECIFIED`` when the error has none, such as a deadline
    or a connection failure, or one this client does not know);
    ``reason_name`` is the string as sent. ``retry_after`` is in seconds,
    from ``google.rpc.RetryInfo`` or else the ``retry-after`` trailer."""

    code: grpc.StatusCode
    message: str
    reason: error_reason_pb2.ErrorReason.ValueType
    reason_name: str
    domain: str
    metadata: Mapping[str, str]
    retry_after: float | None


def decode_error(error: grpc.RpcError) -> Error:
    """The code, message, ErrorInfo and retry delay of a failed call (a
    ``grpc.RpcError`` from a sync or ``grpc.aio`` stub)."""
    code = error.code()  # type: ignore[attr-defined]
    message = error.details() or ""  # type: ignore[attr-defined]
    trailing = {key: value for key, value in (error.trailing_metadata() or ())}  # type: ignore[attr-defined]
    info = error_details_pb2.ErrorInfo()
    retry_after = None
    blob = trailing.get("grpc-status-details-bin")
    if blob:
        status = status_pb2.Status.FromString(blob)
        retry = error_details_pb2.RetryInfo()
        for detail in status.details:
            if detail.Is(info.DESCRIPTOR) and not info.reason:
                detail.Unpack(info)
            elif detail.Is(retry.DESCRIPTOR):
                detail.Unpack(retry)
                retry_after = retry.retry_delay.ToTimedelta().total_seconds()
    if retry_after is None and "retry-after" in trailing:
        try:
            retry_after = float(trailing["retry-after"])
        except ValueError:
            pass
    known = info.domain == DOMAIN and info.reason in error_reason_pb2.ErrorReason.keys()
    return Error(
        code=code,
        message=message,
        reason=error_reason_pb2.ErrorReason.Value(info.reason) if known else error_reason_pb2.ERROR_REASON_UNSPECIFIED,
        reason_name=info.reason,
        domain=info.domain,
        metadata=dict(info.metadata),
        retry_after=retry_after,
    )


class _PagedRequest(Protocol):
    page_token: str


class _Page(Protocol):
    next_page_token: str


RequestT = TypeVar("RequestT", bound=_PagedRequest)
PageT = TypeVar("PageT", bound=_Page)


def pages(method: Callable[..., PageT], request: RequestT, **call_args: Any) -> Iterator[PageT]:
    """Every page of a list call, from ``request``'s page to the last one
    (``call_args``, such as ``timeout``, go to each call)."""
    request_type = type(request)
    current = request_type()
    current.CopyFrom(request)  # type: ignore[attr-defined]
    while True:
        page = method(current, **call_args)
        yield page
        if not page.next_page_token:
            return
        current.page_token = page.next_page_token


def at_least_as_fresh(token: str) -> common_pb2.Consistency:
    """The read requirement that reflects the write whose response carried
    ``token`` (its ``consistency_token``) and every write committed before
    it; ``minimize_latency`` when ``token`` is empty (the write's position
    could not be read, or there was no write)."""
    if not token:
        return common_pb2.Consistency(minimize_latency=True)
    return common_pb2.Consistency(at_least_as_fresh=token)


class _Written(Protocol):
    consistency_token: str


WrittenT = TypeVar("WrittenT", bound=_Written)


class Session:
    """Read-your-writes across calls and processes: remembers the token of
    the last write response observed and hands out the matching
    ``Consistency`` for later reads. Observe responses in the order their
    writes completed; a response with an empty token keeps the token before
    it."""

    def __init__(self, token: str = "") -> None:
        self.token = token

    def observe(self, response: WrittenT) -> WrittenT:
        """Notes ``response``'s ``consistency_token`` and returns the response."""
        if response.consistency_token:
            self.token = response.consistency_token
        return response

    def consistency(self) -> common_pb2.Consistency:
        """``at_least_as_fresh`` of the last token observed
        (``minimize_latency`` before any)."""
        return at_least_as_fresh(self.token)
