"""The in-process sliding-log limiter: exact within one process."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence

from .base import ALLOWED, Decision, Window, decision_counters, refusal


class InProcessLimiter:
    """Sliding logs in a dict, guarded by one lock. ``clock`` returns seconds
    (monotonic by default); tests pass their own to move time.

    Logs are kept in order of their last admission, so requesters whose
    logs have emptied (their last attempt left the longest window) are
    dropped from the front at every call: memory follows the requesters
    active within one window, not every requester ever seen."""

    def __init__(self, windows: Sequence[Window], clock: Callable[[], float] = time.monotonic):
        if not windows:
            raise ValueError("at least one window is required")
        self.windows = tuple(sorted(windows, key=lambda w: w.seconds))
        self._horizon = self.windows[-1].seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._logs: OrderedDict[str, deque[tuple[float, str]]] = OrderedDict()
        self._decisions = decision_counters("in-process")

    def __len__(self) -> int:
        """Requesters tracked."""
        return len(self._logs)

    def acquire(self, key: str, token: str) -> Decision:
        decision = self._acquire(key, token)
        self._decisions[decision.allowed].inc()
        return decision

    def _acquire(self, key: str, token: str) -> Decision:
        with self._lock:
            now = self._clock()
            self._prune(now)
            log = self._logs.get(key)
            if log is None:
                log = deque()
            while log and log[0][0] <= now - self._horizon:
                log.popleft()
            refused = refusal(self.windows, [t for t, _ in log], now)
            if refused is not None:
                return refused
            log.append((now, token))
            self._logs[key] = log
            self._logs.move_to_end(key)
            return ALLOWED

    def _prune(self, now: float) -> None:
        """Drops the least recently admitted requesters whose every entry has left the longest window."""
        while self._logs:
            key, log = next(iter(self._logs.items()))
            if log and log[-1][0] > now - self._horizon:
                return
            del self._logs[key]

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
