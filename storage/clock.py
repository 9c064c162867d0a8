"""The clock SQL reads are stamped with.

Every snapshot's ``read_us`` (when its transaction started) and every commit
position's time come from ``now_us``: wall-clock microseconds that never step
back within a process, so the caches (``cache/freshness.py``) can compare
their entries' times with the times this process saw commit positions at.
"""

from __future__ import annotations

import time

_OFFSET_NS = time.time_ns() - time.monotonic_ns()


def now_us() -> int:
    """Microseconds since the Unix epoch, as the monotonic clock advances."""
    return (time.monotonic_ns() + _OFFSET_NS) // 1000
