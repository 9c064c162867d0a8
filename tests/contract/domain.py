"""Helpers for the rules tests: domain errors, pages and the events a
write appended, all read through ``Graph`` and ``Storage``."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any, TypeVar, cast

import pytest

from ratelimit import InProcessLimiter, Limiter, parse_windows
from server.rules import GraphError, Page, Reason
from storage.types import Cause, EventKind, Storage

from ..conftest import RATE_LIMITS

E = TypeVar("E", bound=GraphError)


def limiter(windows: str = RATE_LIMITS) -> Limiter:
    """An in-process limiter as the suite's graphs use it (the cast: its
    ``windows`` is a tuple where ``Limiter`` declares a Sequence)."""
    return cast(Limiter, InProcessLimiter(parse_windows(windows)))


@contextlib.contextmanager
def refused(kind: type[E], reason: Reason) -> Iterator[pytest.ExceptionInfo[E]]:
    """The block raises the domain error ``kind`` with ``reason``."""
    with pytest.raises(kind) as raised:
        yield raised
    assert raised.value.reason is reason, raised.value


def every(read: Callable[[str], Page]) -> list[Any]:
    """Every item of a list, following its page tokens."""
    items: list[Any] = []
    token = ""
    while True:
        page = read(token)
        items.extend(page.items)
        if not page.next_page_token:
            return items
        token = page.next_page_token


def events(storage: Storage, *users: str) -> list[tuple[EventKind, str, str, Cause]]:
    """(kind, actor, subject, cause) of every event involving ``users``, in
    commit order."""
    storage.read_write(lambda tx: tx.sequence_events(100_000))
    found = storage.read_only(lambda tx: tx.events_after(0, [], list(users), 100_000, 10**12))
    return [(e.kind, e.actor_id, e.subject_id, Cause(e.payload["cause"])) for e in found.events]
