"""The one error map: every failure an RPC can end in becomes a gRPC status
with a ``google.rpc.Status`` (ErrorInfo, and RetryInfo + QuotaFailure when
rate limited) in ``grpc-status-details-bin``."""

from __future__ import annotations

import functools
import inspect
import logging
import math
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.protobuf.message import Message
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from storage import StorageUnavailable

from .rules import (
    ConnectionLimitReached,
    CursorExpired,
    GraphError,
    InvalidArgument,
    NotFound,
    Overloaded,
    PermissionDenied,
    RateLimited,
    Reason,
    ShuttingDown,
    TooManyStreams,
    Unauthenticated,
)

DOMAIN = "socialgraph.v1"
# The reason of an unexpected failure; every other reason is a rules.Reason.
# socialgraph.v1.ErrorReason (protos/) names each of them.
INTERNAL_REASON = "INTERNAL"

log = logging.getLogger(__name__)

_CODES: dict[type[GraphError], grpc.StatusCode] = {
    InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT,
    Unauthenticated: grpc.StatusCode.UNAUTHENTICATED,
    PermissionDenied: grpc.StatusCode.PERMISSION_DENIED,
    NotFound: grpc.StatusCode.NOT_FOUND,
    RateLimited: grpc.StatusCode.RESOURCE_EXHAUSTED,
    ConnectionLimitReached: grpc.StatusCode.RESOURCE_EXHAUSTED,
    Overloaded: grpc.StatusCode.RESOURCE_EXHAUSTED,
    TooManyStreams: grpc.StatusCode.RESOURCE_EXHAUSTED,
    CursorExpired: grpc.StatusCode.FAILED_PRECONDITION,
    ShuttingDown: grpc.StatusCode.UNAVAILABLE,
}


class _StatusFields(NamedTuple):
    code: grpc.StatusCode
    details: str
    trailing_metadata: tuple[tuple[str, str | bytes], ...]


class Status(_StatusFields, grpc.Status):
    """A ``grpc.Status`` for ``ServicerContext.abort_with_status``: its three
    fields as a tuple (the shape of grpc_status's own status)."""


def status_for(exc: Exception) -> Status:
    reason: str
    if isinstance(exc, GraphError):
        code, reason, message, metadata = _CODES[type(exc)], exc.reason, exc.message, exc.metadata
    elif isinstance(exc, StorageUnavailable):
        code, reason = grpc.StatusCode.UNAVAILABLE, Reason.STORAGE_UNAVAILABLE
        message, metadata = "the database cannot be reached; safe to retry", {}
    else:
        code, reason, message, metadata = grpc.StatusCode.INTERNAL, INTERNAL_REASON, "internal error", {}
    # Nothing a client sent may make the error too big to deliver.
    message = _clip(message)
    metadata = {key: _clip(value) for key, value in metadata.items()}
    details: list[Message] = [error_details_pb2.ErrorInfo(reason=str(reason), domain=DOMAIN, metadata=metadata)]
    trailing: list[tuple[str, str | bytes]] = []
    if isinstance(exc, (RateLimited, Overloaded)):
        delay = max(exc.retry_after, 0.0)
        retry_delay = duration_pb2.Duration()
        retry_delay.FromNanoseconds(round(delay * 1e9))
        details.append(error_details_pb2.RetryInfo(retry_delay=retry_delay))
        trailing.append(("retry-after", str(max(1, math.ceil(delay)))))
    if isinstance(exc, RateLimited):
        details.append(
            error_details_pb2.QuotaFailure(
                violations=[
                    error_details_pb2.QuotaFailure.Violation(
                        subject=f"user:{exc.user_id}",
                        description=f"at most {exc.window.limit} connection requests per {exc.window.seconds} s",
                    )
                ]
            )
        )
    status = status_pb2.Status(code=code.value[0], message=message, details=[_packed(d) for d in details])
    # grpc-status-details-bin first, then the retry-after header.
    rich = rpc_status.to_status(status)
    return Status(rich.code, rich.details, (*rich.trailing_metadata, *trailing))


def _packed(detail: Message) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(detail)
    return packed


def _clip(text: str, limit: int = 256) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def translate_errors(cls: type) -> type:
    """Class decorator: every public method of a servicer ends a failed call
    through ``status_for`` (a streaming method too, wherever it fails)."""
    for name, method in list(vars(cls).items()):
        if callable(method) and not name.startswith("_"):
            wrap = _translating_stream if inspect.isgeneratorfunction(method) else _translating
            setattr(cls, name, wrap(method))
    return cls


def _abort(context: grpc.ServicerContext, exc: Exception, name: str) -> None:
    if isinstance(exc, grpc.RpcError):  # abort() raised inside the method
        raise exc
    if not isinstance(exc, (GraphError, StorageUnavailable)):
        log.error("%s failed", name, exc_info=exc)
    context.abort_with_status(status_for(exc))


def _translating(method: Callable[[Any, Any, grpc.ServicerContext], Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def wrapper(self: Any, request: Any, context: grpc.ServicerContext) -> Any:
        try:
            return method(self, request, context)
        except (GraphError, StorageUnavailable) as exc:
            context.abort_with_status(status_for(exc))
        except Exception as exc:
            if isinstance(exc, grpc.RpcError):  # abort() raised inside the method
                raise
            log.exception("%s failed", method.__qualname__)
            context.abort_with_status(status_for(exc))

    return wrapper


def _translating_stream(
    method: Callable[[Any, Any, grpc.ServicerContext], Iterator[Any]],
) -> Callable[..., Iterator[Any]]:
    @functools.wraps(method)
    def wrapper(self: Any, request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        try:
            yield from method(self, request, context)
        except Exception as exc:
            _abort(context, exc, method.__qualname__)

    return wrapper
