"""Keeps connection requests flowing while Redis is down: the in-process
limiter takes over (the limit then holds per process) and Redis is tried
again after a pause."""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable

from prometheus_client import Counter
from redis.exceptions import RedisClusterException, RedisError

from .base import Decision, Limiter

log = logging.getLogger(__name__)

REDIS_ERRORS = (RedisError, RedisClusterException)

FALLBACKS = Counter(
    "socialgraph_limiter_fallbacks_total",
    "Times the limiter fell back from Redis to the in-process limiter.",
)


class FailoverLimiter:
    def __init__(
        self,
        primary: Limiter,
        fallback: Limiter,
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

    @property
    def degraded(self) -> bool:
        return self._clock() < self._down_until

    def acquire(self, key: str, token: str) -> Decision:
        if not self.degraded:
            try:
                return self._primary.acquire(key, token)
            except REDIS_ERRORS as exc:
                self._mark_down(exc)
        return self._fallback.acquire(key, token)

    def release(self, key: str, token: str) -> None:
        # The token is in at most one of them; releasing an unknown token is a no-op.
        self._fallback.release(key, token)
        if not self.degraded:
            try:
                self._primary.release(key, token)
            except REDIS_ERRORS as exc:
                self._mark_down(exc)

    def _mark_down(self, exc: Exception) -> None:
        with self._lock:
            first = not self.degraded
            self._down_until = self._clock() + self._retry_after
        if first:
            FALLBACKS.inc()
            log.warning("limiter: Redis unavailable (%s); limiting in-process for now", exc)
