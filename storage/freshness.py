"""The freshness rule every cache follows.

Each cached entry carries ``read_us``: the wall-clock time (µs) at or before
which the SQL snapshot it came from was taken. For a counter entry published
by a write, that is when its transaction started: the write held the user's
lock until COMMIT, so every earlier write on that user is in it. An entry
therefore reflects every write acknowledged before ``read_us``, and it is
served only while ``now - read_us`` is within the staleness bound. Older
entries are misses, read again from SQL, whichever feed (Redis pub/sub, a
write of this process) last touched them: no feed can vouch for a writer that
died between its COMMIT and its publish.

Entries with the same version hold the same state; a later read of that
version only moves its ``read_us`` forward.
"""

from __future__ import annotations

import time

DEFAULT_MAX_STALENESS = 1.0


# Wall-clock time that never steps back within a process: the caches compare
# their entries' times with times this process saw commit positions at.
_OFFSET_NS = time.time_ns() - time.monotonic_ns()


def now_us() -> int:
    """Microseconds since the Unix epoch, as the monotonic clock advances."""
    return (time.monotonic_ns() + _OFFSET_NS) // 1000


class Freshness:
    """The staleness bound, in seconds."""

    def __init__(self, max_staleness: float = DEFAULT_MAX_STALENESS) -> None:
        self.bound_us = int(max_staleness * 1_000_000)

    def fresh(self, read_us: int, now: int | None = None) -> bool:
        return (now_us() if now is None else now) - read_us <= self.bound_us
