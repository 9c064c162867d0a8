"""The in-process sliding-log limiter: exact within one process."""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Callable, Sequence

from .base import ALLOWED, Decision, Window, decision_counters


class InProcessLimiter:
    """Sliding logs in a dict, guarded by one lock. ``clock`` returns seconds
    (monotonic by default); tests pass their own to move time."""

    def __init__(self, windows: Sequence[Window], clock: Callable[[], float] = time.monotonic):
        if not windows:
            raise ValueError("at least one window is required")
        self.windows = tuple(sorted(windows, key=lambda w: w.seconds))
        self._horizon = self.windows[-1].seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._logs: dict[str, deque[tuple[float, str]]] = {}
        self._decisions = decision_counters("in-process")

    def acquire(self, key: str, token: str) -> Decision:
        decision = self._acquire(key, token)
        self._decisions[decision.allowed].inc()
        return decision

    def _acquire(self, key: str, token: str) -> Decision:
        with self._lock:
            now = self._clock()
            log = self._logs.get(key)
            if log is None:
                log = self._logs[key] = deque()
            while log and log[0][0] <= now - self._horizon:
                log.popleft()
            refusal = None
            for window in self.windows:
                inside = [t for t, _ in log if t > now - window.seconds]
                if len(inside) >= window.limit:
                    # The slot frees when the entry that makes the count reach
                    # the limit leaves the window.
                    wait = inside[len(inside) - window.limit] + window.seconds - now
                    if refusal is None or wait > refusal.retry_after:
                        refusal = Decision(False, wait, window)
            if refusal is not None:
                if not log:
                    del self._logs[key]
                return refusal
            log.append((now, token))
            return ALLOWED

    def release(self, key: str, token: str) -> None:
        with self._lock:
            log = self._logs.get(key)
            if log is None:
                return
            for entry in log:
                if entry[1] == token:
                    log.remove(entry)
                    break
            if not log:
                del self._logs[key]
