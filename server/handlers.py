"""Method handlers built from the service descriptors.

Like the generated ``add_*Servicer_to_server`` functions, but a request that
does not parse (bytes that are no protobuf, or a string field that is not
UTF-8) is answered INVALID_ARGUMENT / MALFORMED_REQUEST instead of grpc's
INTERNAL."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc
from google.protobuf.descriptor import ServiceDescriptor
from google.protobuf.message import DecodeError, Message
from google.protobuf.message_factory import GetMessageClass

from .errors import status_for
from .interceptors import Behavior, Handler
from .rules import InvalidArgument, Reason


class _Malformed:
    __slots__ = ("error",)

    def __init__(self, error: str) -> None:
        self.error = error


def add_service(server: grpc.Server, servicer: object, service: ServiceDescriptor) -> None:
    """Registers every method of ``service`` (a ServiceDescriptor) on ``servicer``."""
    handlers: dict[str, Handler] = {}
    for method in service.methods:
        request = GetMessageClass(method.input_type)
        response = GetMessageClass(method.output_type)
        make = grpc.unary_stream_rpc_method_handler if method.server_streaming else grpc.unary_unary_rpc_method_handler
        handlers[method.name] = make(
            _rejecting_malformed(getattr(servicer, method.name), method.input_type.full_name),
            request_deserializer=_tolerant(request.FromString),
            response_serializer=response.SerializeToString,
        )
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service.full_name, handlers),))


def _tolerant(parse: Callable[[bytes], Message]) -> Callable[[bytes], Message | _Malformed]:
    def parse_or_mark(data: bytes) -> Message | _Malformed:
        try:
            return parse(data)
        except DecodeError as exc:
            return _Malformed(str(exc))

    return parse_or_mark


def _rejecting_malformed(behavior: Behavior, type_name: str) -> Behavior:
    def call(request: Any, context: grpc.ServicerContext) -> Any:
        if isinstance(request, _Malformed):
            error = InvalidArgument(Reason.MALFORMED_REQUEST, "request", f"not a valid {type_name}: {request.error}")
            context.abort_with_status(status_for(error))
        return behavior(request, context)

    return call
