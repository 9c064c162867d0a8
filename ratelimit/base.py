"""The limiter contract shared by the in-process and Redis limiters.

A limiter keeps, per key, a sliding log of admitted attempts, each named by a
token (the connection request's id). ``acquire`` admits an attempt only if
every window still has room, and records it in one atomic step; a refused
attempt is not recorded. ``release`` removes an admitted attempt again, for
an attempt that ended up creating nothing.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from prometheus_client import Counter

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_WINDOW = re.compile(r"^\s*(\d+)\s*/\s*(\d*)\s*([smhd])\s*$")


@dataclass(frozen=True, slots=True)
class Window:
    """At most ``limit`` attempts in any ``seconds``-long interval."""

    limit: int
    seconds: int

    def __str__(self) -> str:
        for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
            if self.seconds % size == 0:
                return f"{self.limit}/{self.seconds // size}{unit}"
        return f"{self.limit}/{self.seconds}s"


def parse_windows(spec: str) -> tuple[Window, ...]:
    """Parses ``"20/1h,100/24h"`` (units s, m, h, d; a missing count means 1)."""
    windows = []
    for part in spec.split(","):
        match = _WINDOW.match(part)
        if not match:
            raise ValueError(f"bad rate limit window {part!r}: expected e.g. 20/1h")
        limit, count, unit = int(match[1]), int(match[2] or 1), match[3]
        if limit < 1 or count < 1:
            raise ValueError(f"bad rate limit window {part!r}: numbers must be positive")
        windows.append(Window(limit, count * _UNITS[unit]))
    return tuple(sorted(windows, key=lambda w: w.seconds))


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome of ``acquire``. When refused, ``retry_after`` is the time
    in seconds until the fullest refusing window frees a slot, and
    ``window`` is that window."""

    allowed: bool
    retry_after: float = 0.0
    window: Window | None = None


ALLOWED = Decision(True)


def refusal(windows: Sequence[Window], times: Sequence[float], now: float) -> Decision | None:
    """The sliding-log rule shared by the in-process and SQL limiters:
    ``times`` are the admitted attempts of one key (oldest first, seconds);
    None when every window has room, else the refusal of the window whose
    slot frees last."""
    refused = None
    for window in windows:
        inside = [t for t in times if t > now - window.seconds]
        if len(inside) >= window.limit:
            # The slot frees when the entry that makes the count reach the
            # limit leaves the window.
            wait = inside[len(inside) - window.limit] + window.seconds - now
            if refused is None or wait > refused.retry_after:
                refused = Decision(False, wait, window)
    return refused

DECISIONS = Counter(
    "socialgraph_limiter_decisions_total",
    "Connection-request limiter decisions, by backend (redis, sql, in-process) and result.",
    ["backend", "result"],
)


def decision_counters(backend: str) -> dict[bool, Counter]:
    """The decision counters of one backend, keyed by ``Decision.allowed``."""
    return {True: DECISIONS.labels(backend, "allowed"), False: DECISIONS.labels(backend, "refused")}


class Limiter(Protocol):
    windows: tuple[Window, ...]  # shortest first

    def acquire(self, key: str, token: str) -> Decision: ...

    def release(self, key: str, token: str) -> None: ...


# What a limiter leaves to the caller's database transaction: given the
# transaction (a ``storage.types.Tx``), it decides (the database limiter) or
# records the admitted attempt in the database log (Redis, whose log the
# database keeps whole for a fallback), and returns the decision.
InTransaction = Callable[[Any], Decision]


class SharesTransactions(Limiter, Protocol):
    def acquire_within(self, key: str, token: str) -> tuple[Decision, InTransaction | None]: ...


def admit(limiter: Limiter, key: str, token: str) -> tuple[Decision, InTransaction | None]:
    """``acquire``, leaving what the limiter writes to the database to the
    caller's transaction when the limiter can (``acquire_within``): the
    decision known now, and the step the transaction runs first, if any
    (its decision is final; a refusal there records nothing). The attempt
    is admitted and recorded once that transaction commits; ``release``
    gives it back as after ``acquire``."""
    within = getattr(limiter, "acquire_within", None)
    if within is None:
        return limiter.acquire(key, token), None
    decided: tuple[Decision, InTransaction | None] = within(key, token)
    return decided
