"""A span per SQL transaction: ``TracedStorage`` wraps a storage with the
same interface (the caller's span, if any, is the parent)."""

from __future__ import annotations

from typing import Callable, TypeVar

from opentelemetry import trace

T = TypeVar("T")


class TracedStorage:
    def __init__(self, storage, tracer: trace.Tracer) -> None:
        self._storage = storage
        self._tracer = tracer
        self._attributes = {"db.system": storage.dialect}

    def read_write(self, fn: Callable[..., T]) -> T:
        with self._tracer.start_as_current_span("sql read_write", kind=trace.SpanKind.CLIENT, attributes=self._attributes):
            return self._storage.read_write(fn)

    def read_only(self, fn: Callable[..., T]) -> T:
        with self._tracer.start_as_current_span("sql read_only", kind=trace.SpanKind.CLIENT, attributes=self._attributes):
            return self._storage.read_only(fn)

    def __getattr__(self, name: str):
        return getattr(self._storage, name)
