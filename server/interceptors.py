"""``HandlerWrapper``: the one way the server's interceptors change a
method's handlers. grpc asks every interceptor for the handler on every
call; a wrapper builds its version once per method and keeps it (unknown
methods are not kept, so callers cannot grow the table)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeAlias

import grpc

KINDS = ("unary_unary", "unary_stream", "stream_unary", "stream_stream")

# A method's handler, and its behaviour: (request or request iterator, context)
# -> response or response iterator; over any message types.
Handler: TypeAlias = "grpc.RpcMethodHandler[Any, Any]"  # generic in the stubs only
Behavior = Callable[[Any, grpc.ServicerContext], Any]


class HandlerWrapper(grpc.ServerInterceptor):
    def __init__(self) -> None:
        self._wrapped: dict[str, Handler] = {}

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Handler | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Handler | None:
        method = handler_call_details.method
        wrapped = self._wrapped.get(method)
        if wrapped is None:
            handler = continuation(handler_call_details)
            if handler is None:
                return None
            wrapped = self._wrapped[method] = self.wrap(method, handler)
        return wrapped

    def wrap(self, method: str, handler: Handler) -> Handler:
        """``handler`` as this interceptor serves ``method``."""
        raise NotImplementedError


class UnaryWrapper(HandlerWrapper):
    """Wraps the behaviour of unary methods; streaming ones pass unchanged."""

    def wrap(self, method: str, handler: Handler) -> Handler:
        if handler.unary_unary is None:
            return handler
        # grpc's handlers are namedtuples; the stubs declare only the abstract class.
        return handler._replace(unary_unary=self.wrap_unary(method, handler.unary_unary))  # type: ignore[attr-defined, no-any-return]

    def wrap_unary(self, method: str, behavior: Behavior) -> Behavior:
        raise NotImplementedError
