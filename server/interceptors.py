"""``HandlerWrapper``: the one way the server's interceptors change a
method's handlers. grpc asks every interceptor for the handler on every
call; a wrapper builds its version once per method and keeps it (unknown
methods are not kept, so callers cannot grow the table)."""

from __future__ import annotations

import grpc

KINDS = ("unary_unary", "unary_stream", "stream_unary", "stream_stream")


class HandlerWrapper(grpc.ServerInterceptor):
    def __init__(self) -> None:
        self._wrapped: dict[str, grpc.RpcMethodHandler] = {}

    def intercept_service(self, continuation, handler_call_details):
        method = handler_call_details.method
        wrapped = self._wrapped.get(method)
        if wrapped is None:
            handler = continuation(handler_call_details)
            if handler is None:
                return None
            wrapped = self._wrapped[method] = self.wrap(method, handler)
        return wrapped

    def wrap(self, method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        """``handler`` as this interceptor serves ``method``."""
        raise NotImplementedError


class UnaryWrapper(HandlerWrapper):
    """Wraps the behaviour of unary methods; streaming ones pass unchanged."""

    def wrap(self, method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        if handler.unary_unary is None:
            return handler
        return handler._replace(unary_unary=self.wrap_unary(method, handler.unary_unary))

    def wrap_unary(self, method: str, behavior):
        raise NotImplementedError
