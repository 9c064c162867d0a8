"""Reading the event log: cursors, positions, filters and retention.

Events are written by the rules in ``graph.py``, in the transaction of the
write they describe. Here they are read back by position (``seq``, the
order the transactions committed in; see ``SqlTx._append_events``).

A cursor is the URL-safe base64 of ``e1.<position>.<checksum>``. One that
does not decode, fails its checksum or names a position the log has not
reached is INVALID_CURSOR; one behind the retention horizon (events after it
were pruned) is CURSOR_EXPIRED.
"""

from __future__ import annotations

import base64
import binascii
import zlib
from collections.abc import Callable, Sequence

from storage.types import Event, EventRange, Storage, Tx

from .errors import CursorExpired, InvalidArgument, Reason

# Events one read returns at most, and positions it looks at at most: a
# stream holds one read in memory, and a filtered stream resuming far back
# advances in bounded steps.
READ_LIMIT = 256
SCAN_LIMIT = 10_000
# Events pruned, or given positions, per transaction.
PRUNE_BATCH = 1000
SEQUENCE_BATCH = 5000


def encode_cursor(position: int) -> str:
    raw = f"e1.{position}.{_checksum(position)}".encode("ascii")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def decode_cursor(cursor: str, field: str = "after_cursor") -> int:
    try:
        raw = base64.urlsafe_b64decode(cursor.encode("ascii") + b"=" * (-len(cursor) % 4))
        version, position, checksum = raw.decode("ascii").split(".")
        if version != "e1" or not position.isdigit() or len(position) > 18 or checksum != _checksum(int(position)):
            raise ValueError(cursor)
        return int(position)
    except (ValueError, UnicodeError, binascii.Error):
        raise InvalidArgument(Reason.INVALID_CURSOR, field, "not a cursor of this event log") from None


def _checksum(position: int) -> str:
    return f"{zlib.crc32(f'events:{position}'.encode()):08x}"


class EventLog:
    """The event log as a stream reader sees it."""

    def __init__(self, storage: Storage, clock: Callable[[], int]) -> None:
        self.storage = storage
        self._now = clock

    def start(self, cursor: str) -> int:
        """The position a stream starts after: the cursor's, or the newest
        event's when ``cursor`` is empty. Every write that committed before
        is given its position first, so none of it counts as "after now", and
        a stream never waits for the sequencer to learn of older events."""
        position = decode_cursor(cursor) if cursor else None
        self.sequence()
        if position is None:
            return self.storage.read_only(lambda tx: tx.event_head())

        def run(tx: Tx) -> int:
            if position > tx.event_head():
                raise InvalidArgument(
                    Reason.INVALID_CURSOR, "after_cursor", "names a position this log has not reached"
                )
            _refuse_if_pruned(tx, position)
            return position

        return self.storage.read_only(run)

    def token(self, event: Event) -> str:
        """The consistency token of the event's transaction (a read with it
        sees the change); empty when its position is unknown."""
        return "" if event.position is None else self.storage.token_at(event.position)

    def read(self, after: int, kinds: Sequence[int] = (), user_ids: Sequence[str] = ()) -> EventRange:
        """The next events after ``after`` that match the filters. The
        horizon is read after the events, so events pruned while they were
        read make the read fail rather than skip them."""

        def run(tx: Tx) -> EventRange:
            found = tx.events_after(after, kinds, user_ids, READ_LIMIT, SCAN_LIMIT)
            _refuse_if_pruned(tx, after)
            return found

        return self.storage.read_only(run)

    def sequence(self) -> list[Event]:
        """Gives every committed event without a position its position, one
        transaction per ``SEQUENCE_BATCH``; returns the events the last
        transaction numbered, in order (dense positions: after the head that
        transaction saw), so the caller need not read them back."""

        def run(tx: Tx) -> list[Event]:
            numbered: list[Event] = []  # one list per attempt: a rerun starts afresh
            tx.sequence_events(SEQUENCE_BATCH, numbered)
            return numbered

        while len(numbered := self.storage.read_write(run)) == SEQUENCE_BATCH:
            pass
        return numbered

    def prune(self, retention_us: int) -> int:
        """Removes one batch of events older than the retention; returns how many."""
        before = self._now() - retention_us
        return self.storage.read_write(lambda tx: tx.prune_events(before, PRUNE_BATCH))


def _refuse_if_pruned(tx: Tx, position: int) -> None:
    if position < tx.event_horizon():
        raise CursorExpired()
