"""The version rule, the one thing every cache layer agrees on.

**Counters.** Every change to a user's counters sets the row's version to
``max(version + 1, now in µs)`` in the writing transaction, so versions only
grow and a higher version is a later state. A layer keeps, per user, the
entry with the highest version it has seen (``newer``); the same version read
again later holds the same state and only moves the entry's ``read_us``
forward. A user without a counter row is stored as zeros at version 0, which
any write beats (``load_missing``). Redis applies the same rule inside
``lua/set_counts.lua``, so a slower, older write or a late miss fill never
overwrites a newer value wherever the entry lives.

**Relationships.** Every edge change bumps the counter version of at least
one of its two users (a block bumps the blocker's ``blocked``, a third
user's connection bumps ``connections``, which a mutual count depends on).
A relationship entry is stored with the two versions the SQL statement that
read it saw, and served only while the counter layer beside it holds
exactly those versions (``valid``): a write never deletes relationship
entries, its new versions make them misses. An entry is kept once per
unordered pair, from the side of the user whose id sorts first, and starts
with its format (``FORMAT``): an entry of another format (a rolling deploy
that changed its shape) is a miss, never an error. Counter hashes carry
theirs in their key (``COUNTS_FORMAT``): a process reads and announces only
hashes of its own format, so one of another shape is never read, only aged
out by its TTL.

Both kinds of entry are served only within the staleness bound as well
(``cache/freshness.py``): versions say which state is newer, not that a
writer did not die before publishing its own.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from storage.clock import now_us
from storage.types import FLAGS, Counts, Relationship, VersionedCounts

from .freshness import Freshness
from .readers import COUNTER_LOOKUPS, CounterReader

FORMAT = "r1"
COUNTS_FORMAT = "c1"  # bump when the counter hash changes its fields or their meaning

Versions = tuple[int, int]
# A relationship entry decoded: the versions and the relationship as the
# pair's first user sees them, and when it was read.
Decoded = tuple[Versions, Relationship, int]


# ------------------------------------------------------------------ counters


def newer(current: VersionedCounts | None, entry: VersionedCounts) -> VersionedCounts | None:
    """What a layer holding ``current`` stores when ``entry`` arrives; None
    to keep ``current`` as it is."""
    if current is None or current.version < entry.version:
        return entry
    if current.version == entry.version and current.read_us < entry.read_us:
        # The same state, read again later: only its age changes.
        return VersionedCounts(current.counts, current.version, entry.read_us)
    return None


def load_missing(inner: CounterReader, user_ids: Sequence[str]) -> dict[str, VersionedCounts]:
    """What a cache stores for ``user_ids`` after a miss: the layer below's
    counters, and zeros at version 0 for users without a counter row."""
    read_us = now_us()
    loaded = inner.get(user_ids)
    return {u: loaded.get(u) or VersionedCounts(Counts(u), 0, read_us) for u in user_ids}


def fill(
    tier: str,
    found: dict[str, VersionedCounts],
    missing: list[str],
    inner: CounterReader,
    publish: Callable[[dict[str, VersionedCounts]], None],
) -> dict[str, VersionedCounts]:
    """A counter layer's answer: what it ``found``, and for the ``missing``
    users what ``load_missing`` reads below, stored the guarded way
    (``publish``); both counted as the ``tier``'s hits and misses."""
    COUNTER_LOOKUPS.labels(tier, "hit").inc(len(found))
    if missing:
        COUNTER_LOOKUPS.labels(tier, "miss").inc(len(missing))
        loaded = load_missing(inner, missing)
        publish(loaded)
        found.update(loaded)
    return found


# ------------------------------------------------------------- relationships


def pair(user_id: str, other_id: str) -> tuple[str, str]:
    """The pair's ids in the order its entry is stored from."""
    return (user_id, other_id) if user_id < other_id else (other_id, user_id)


def encode(versions: Versions, relationship: Relationship, read_us: int) -> str:
    """An entry: its format, when it was read, the two users' versions, the
    flags and the mutual count."""
    flags = "".join("1" if getattr(relationship, name) else "0" for name in FLAGS)
    return f"{FORMAT}:{read_us}:{versions[0]}:{versions[1]}:{flags}:{relationship.mutual_connections_count}"


def decode(value: str, other_id: str) -> Decoded | None:
    """An entry as stored, seen by the pair's first user (``other_id`` is the
    second), with its ``read_us``; None for an entry of another format."""
    parts = value.split(":")
    if len(parts) != 6 or parts[0] != FORMAT or len(parts[4]) != len(FLAGS):
        return None
    _format, read_us, first_version, second_version, flags, mutual = parts
    relationship = Relationship.of(other_id, [bit == "1" for bit in flags], int(mutual))
    return (int(first_version), int(second_version)), relationship, int(read_us)


def turned(versions: Versions, relationship: Relationship, viewer_id: str) -> tuple[Versions, Relationship]:
    """The versions and relationship seen by ``viewer_id`` from the other side."""
    return (versions[1], versions[0]), relationship.seen_by_other(viewer_id)


def decoded(user_id: str, other_id: str, versions: Versions, relationship: Relationship, read_us: int) -> Decoded:
    """What ``user_id`` read about ``other_id``, as the pair's first user sees it."""
    if user_id != pair(user_id, other_id)[0]:
        versions, relationship = turned(versions, relationship, user_id)
    return versions, relationship, read_us


def entry(user_id: str, other_id: str, versions: Versions, relationship: Relationship, read_us: int) -> str:
    """What ``user_id`` read about ``other_id``, stored as the pair's first user sees it."""
    return encode(*decoded(user_id, other_id, versions, relationship, read_us))


def decode_entry(user_id: str, other_id: str, value: str) -> Decoded | None:
    """A stored entry of the pair ``user_id``, ``other_id`` (in either order) decoded."""
    return decode(value, pair(user_id, other_id)[1])


def valid(
    user_id: str,
    other_id: str,
    found: Decoded | None,
    current: dict[str, int],
    freshness: Freshness,
    newer_than: int,
    now: int,
) -> Decoded | None:
    """A decoded entry (None: none of this format) seen from ``user_id``,
    with its ``read_us``, when it may be served: both users' ``current``
    counter versions are the ones it was read at, it was read after
    ``newer_than`` and within the staleness bound. None otherwise (a miss)."""
    if found is None:
        return None
    first, second = pair(user_id, other_id)
    stored, relationship, read_us = found
    if stored != (current.get(first), current.get(second)):
        return None
    if read_us <= newer_than or not freshness.fresh(read_us, now):
        return None
    if user_id != first:
        stored, relationship = turned(stored, relationship, first)
    return stored, relationship, read_us
