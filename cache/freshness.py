"""The staleness bound every cache layer follows.

Each cached entry carries ``read_us``: the wall-clock time (µs,
``storage/clock.py``) at or before which the SQL snapshot it came from was
taken. For a counter entry published by a write, that is when its
transaction started: the write held the user's lock until COMMIT, so every
earlier write on that user is in it. An entry therefore reflects every write
acknowledged before ``read_us``, and it is served only while ``now - read_us``
is within the bound. Older entries are misses, read again from SQL, whichever
feed (Redis pub/sub, a write of this process) last touched them: no feed can
vouch for a writer that died between its COMMIT and its publish.
"""

from __future__ import annotations

from storage.clock import now_us

DEFAULT_MAX_STALENESS = 1.0


class Freshness:
    """The staleness bound, in seconds."""

    def __init__(self, max_staleness: float = DEFAULT_MAX_STALENESS) -> None:
        self.bound_us = int(max_staleness * 1_000_000)

    def fresh(self, read_us: int, now: int | None = None) -> bool:
        return (now_us() if now is None else now) - read_us <= self.bound_us
