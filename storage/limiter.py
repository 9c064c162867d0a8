"""The database limiter: the same sliding logs as the in-process and Redis
limiters, kept in ``limiter_log``, so every process on one database shares
them. A transaction per decision locks the requester (an advisory lock on
PostgreSQL; SQLite serialises every write), reads its log inside the longest
window, and records the attempt when every window has room."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from ratelimit.base import ALLOWED, Decision, Window, decision_counters, refusal

from .types import Storage, Tx

# Every this many decisions, one batch of entries that left the longest
# window is deleted, whoever they belong to.
PRUNE_EVERY = 256
PRUNE_BATCH = 1000


def wall_clock_us() -> int:
    return time.time_ns() // 1000


class SqlLimiter:
    """Exact across processes sharing the database. Times come from
    ``clock`` (the server's wall clock, in µs): servers sharing a database
    keep their clocks in step (NTP)."""

    def __init__(self, storage: Storage, windows: Sequence[Window], clock: Callable[[], int] = wall_clock_us) -> None:
        if not windows:
            raise ValueError("at least one window is required")
        self.windows = tuple(sorted(windows, key=lambda w: w.seconds))
        self._horizon_us = self.windows[-1].seconds * 1_000_000
        self._storage = storage
        self._clock = clock
        self._calls = 0
        self._decisions = decision_counters("sql")

    def acquire(self, key: str, token: str) -> Decision:
        return self._storage.read_write(self.acquire_within(key, token)[1])

    def acquire_within(self, key: str, token: str) -> tuple[Decision, Callable[[Tx], Decision]]:
        """The decision is the transaction's: it locks the key, reads its log
        and records the attempt when every window has room. Counted once,
        however often the transaction is rerun."""
        now = self._clock()
        counted = False

        def decide(tx: Tx) -> Decision:
            nonlocal counted
            tx.lock_limiter_key(key)
            times = tx.limiter_times(key, now - self._horizon_us)
            decision = refusal(self.windows, [t / 1e6 for t in times], now / 1e6) or ALLOWED
            if decision.allowed:
                tx.limiter_add(key, token, now)
            if not counted:
                counted = True
                self._decisions[decision.allowed].inc()
            return decision

        self._maybe_prune(now)
        return ALLOWED, decide

    def recorder(self, key: str, token: str) -> Callable[[Tx], Decision]:
        """What a transaction runs to add an attempt another limiter admitted
        (as ``record``, inside the caller's transaction)."""
        at = self._clock()

        def add(tx: Tx) -> Decision:
            tx.limiter_add(key, token, at)
            return ALLOWED

        return add

    def record(self, key: str, token: str, at_us: int | None = None) -> None:
        """Adds an attempt another limiter admitted, so the log stays whole."""
        at = self._clock() if at_us is None else at_us
        self._storage.read_write(lambda tx: tx.limiter_add(key, token, at))
        self._maybe_prune(at)

    def entries(self, key: str) -> list[tuple[str, int]]:
        """The key's (token, µs) entries inside the longest window."""
        since = self._clock() - self._horizon_us
        return self._storage.read_only(lambda tx: tx.limiter_entries(key, since))

    def release(self, key: str, token: str) -> None:
        self._storage.read_write(lambda tx: tx.limiter_remove(key, token))

    def _maybe_prune(self, now: int) -> None:
        self._calls += 1
        if self._calls % PRUNE_EVERY == 0:
            self._storage.read_write(lambda tx: tx.limiter_prune(now - self._horizon_us, PRUNE_BATCH))
