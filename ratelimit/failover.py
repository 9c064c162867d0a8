"""Keeps connection requests flowing, and exactly limited, while Redis is
down: the database limiter (storage/limiter.py) takes over and Redis is tried
again after a pause.

The database log is kept whole while Redis answers too: every attempt Redis
admits is also recorded there, so the fallback knows what Redis knew. After
an outage, each requester's log in Redis is completed from the database (the
attempts admitted during the outage, or everything when Redis restarted
empty) the first time this process sees the requester, for one longest
window.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Protocol

from prometheus_client import Counter

from cache.redis_client import REDIS_ERRORS

from .base import Decision, InTransaction, Limiter

log = logging.getLogger(__name__)

FALLBACKS = Counter(
    "socialgraph_limiter_fallbacks_total",
    "Times the limiter fell back from Redis to the database limiter.",
)


class Seedable(Limiter, Protocol):
    def seed(self, key: str, entries: list[tuple[str, int]]) -> None: ...


class Recording(Limiter, Protocol):
    def record(self, key: str, token: str, at_us: int | None = None) -> None: ...

    def entries(self, key: str) -> list[tuple[str, int]]: ...

    def acquire_within(self, key: str, token: str) -> tuple[Decision, InTransaction | None]: ...

    def recorder(self, key: str, token: str) -> InTransaction: ...


class FailoverLimiter:
    def __init__(
        self,
        primary: Seedable,
        fallback: Recording,
        retry_after: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.windows = primary.windows
        self._primary = primary
        self._fallback = fallback
        self._retry_after = retry_after
        self._clock = clock
        self._down_until = 0.0
        self._lock = threading.Lock()
        # After an outage: until when requesters are completed from the
        # database, and those already done.
        self._sync_until = 0.0
        self._synced: set[str] = set()

    @property
    def degraded(self) -> bool:
        return self._clock() < self._down_until

    def acquire(self, key: str, token: str) -> Decision:
        decision = self._primary_decision(key, token)
        if decision is None:
            return self._fallback.acquire(key, token)
        if decision.allowed:
            try:
                self._fallback.record(key, token)
            except BaseException:
                self._release_primary(key, token)
                raise
        return decision

    def acquire_within(self, key: str, token: str) -> tuple[Decision, InTransaction | None]:
        """As ``acquire``, but an attempt Redis admits is recorded in the
        database by the caller's transaction, not one of its own; while
        Redis is down the database limiter decides in that transaction."""
        decision = self._primary_decision(key, token)
        if decision is None:
            return self._fallback.acquire_within(key, token)
        return decision, self._fallback.recorder(key, token) if decision.allowed else None

    def _primary_decision(self, key: str, token: str) -> Decision | None:
        """Redis's decision, or None while it is down (a failure marks it down)."""
        if self.degraded:
            return None
        try:
            self._sync(key)
            return self._primary.acquire(key, token)
        except REDIS_ERRORS as exc:
            self._mark_down(exc)
            return None

    def release(self, key: str, token: str) -> None:
        self._fallback.release(key, token)
        if not self.degraded:
            self._release_primary(key, token)

    def _release_primary(self, key: str, token: str) -> None:
        try:
            self._primary.release(key, token)
        except REDIS_ERRORS as exc:
            self._mark_down(exc)

    def _sync(self, key: str) -> None:
        if self._clock() >= self._sync_until:
            if self._synced:
                self._synced = set()
            return
        if key in self._synced:
            return
        self._primary.seed(key, self._fallback.entries(key))
        self._synced.add(key)

    def _mark_down(self, exc: Exception) -> None:
        with self._lock:
            first = not self.degraded
            self._down_until = self._clock() + self._retry_after
            self._sync_until = self._down_until + self.windows[-1].seconds
            self._synced = set()
        if first:
            FALLBACKS.inc()
            log.warning("limiter: Redis unavailable (%s); limiting in the database for now", exc)
