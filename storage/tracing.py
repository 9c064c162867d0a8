"""A span per SQL transaction: ``TracedStorage`` wraps a storage with the
same interface. The span is a child of the caller's span; a transaction
outside any traced call (start-up, background work) records none."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from opentelemetry import trace

from .engine import SqlStorage
from .sql import SqlTx

T = TypeVar("T")


class TracedStorage:
    def __init__(self, storage: SqlStorage, tracer: trace.Tracer) -> None:
        self._storage = storage
        self._tracer = tracer
        self._attributes = {"db.system": storage.dialect}

    def read_write(self, fn: Callable[[SqlTx], T]) -> T:
        return self._traced("sql read_write", self._storage.read_write, fn)

    def read_only(self, fn: Callable[[SqlTx], T]) -> T:
        return self._traced("sql read_only", self._storage.read_only, fn)

    def _traced(self, name: str, run: Callable[[Callable[[SqlTx], T]], T], fn: Callable[[SqlTx], T]) -> T:
        if not trace.get_current_span().get_span_context().is_valid:
            return run(fn)
        with self._tracer.start_as_current_span(name, kind=trace.SpanKind.CLIENT, attributes=self._attributes):
            return run(fn)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._storage, name)
