"""Gives events their positions and wakes event streams when new ones commit.

One feed per process keeps the newest event position (the head), reads
the new events once, keeps the latest ``keep`` of them in memory, and wakes
every waiting stream when the head moves. A stream whose position is within
that window takes its events from memory (``recent``), so many watchers
cost one read of the log per change, not one each; a stream further behind
reads the log itself.

On PostgreSQL the feed also runs the sequencer (``sequence``, which gives
committed events their positions and returns them; see
``SqlTx.sequence_events``): at once after a write of this process commits
(one run numbers every commit that arrived meanwhile), and every
``fallback`` seconds for events whose writer died before sequencing them.
The events a run numbered go into memory as it returned them when they
follow the head at once; otherwise (another process numbered some in
between) the feed reads the log. A second thread waits on ``LISTEN``: every
sequencer run that gave positions, in any process, sends ``NOTIFY`` at
commit with the new head; a notification the feed's head already covers
(its own sequencer's, usually) is not read again. On SQLite writers give
positions themselves, and the feed re-reads the head every ``poll`` seconds
(other processes' writes) and at once after a write of this process
commits.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Collection
from typing import Any

import psycopg

from .engine import SqlStorage
from .errors import StorageError
from .sql import EVENTS_CHANNEL
from .types import Event, EventRange, Tx

log = logging.getLogger(__name__)


class EventFeed:
    def __init__(
        self,
        storage: SqlStorage,
        sequence: Callable[[], list[Event]],
        *,
        poll: float = 0.02,
        fallback: float = 1.0,
        keep: int = 4096,
    ) -> None:
        self._storage = storage
        self._sequence = sequence
        self._poll = poll
        self._fallback = fallback
        self._changed = threading.Condition()
        self._head = 0
        # The latest events, every position in (self._low, self._head]; and
        # the retention horizon as last read.
        self._recent: deque[Event] = deque(maxlen=keep)
        self._low = 0
        self._horizon = 0
        self._reading = threading.Lock()
        self._closed = False
        self._poke = threading.Event()
        self._sequencing = False  # the sequencer is between a run's start and its events in memory
        self._read_at = 0.0  # time.monotonic() of the last read of the log
        self._threads: list[threading.Thread] = []
        self._start_lock = threading.Lock()
        storage.on_events_committed(self._poke.set)

    @property
    def closed(self) -> bool:
        return self._closed

    def start(self) -> EventFeed:
        """Starts the threads on first use; later calls do nothing."""
        with self._start_lock:
            if self._threads or self._closed:
                return self
            if self._storage.dialect == "postgresql":
                targets = {"event-sequencer": self._run_sequencer, "event-listener": self._listen}
            else:
                targets = {"event-feed": self._tail}
            self._refresh()
            for name, target in targets.items():
                thread = threading.Thread(target=target, name=name, daemon=True)
                thread.start()
                self._threads.append(thread)
        return self

    def wait(self, position: int, timeout: float, stop: Callable[[], bool]) -> None:
        """Returns once the head is past ``position``, ``stop()`` is true
        (checked whenever ``wake`` is called), the feed is closed, or after
        ``timeout`` seconds."""
        with self._changed:
            self._changed.wait_for(lambda: self._head > position or stop() or self._closed, timeout=timeout)

    def recent(self, after: int, kinds: Collection[int], user_ids: Collection[str], limit: int) -> EventRange | None:
        """The events after ``after`` matching the filters, from memory; None
        when ``after`` is outside the window (read the log instead)."""
        with self._changed:
            if not (self._low <= after <= self._head) or after < self._horizon:
                return None
            found: list[Event] = []
            for event in reversed(self._recent):
                if event.seq <= after:
                    break
                found.append(event)
            head = self._head
        found.reverse()
        if kinds:
            found = [e for e in found if e.kind in kinds]
        if user_ids:
            found = [e for e in found if e.actor_id in user_ids or e.subject_id in user_ids]
        if len(found) > limit:
            return EventRange(found[:limit], found[limit - 1].seq, head)
        return EventRange(found, head, head)

    def wake(self) -> None:
        """Wakes every waiting stream to check its ``stop`` (one was cancelled)."""
        with self._changed:
            self._changed.notify_all()

    def close(self) -> None:
        self._closed = True
        self._poke.set()
        self.wake()

    def _refresh(self) -> None:
        """Reads the head and the events up to it (one thread at a time)."""
        with self._reading:
            try:
                head, fresh, horizon = self._storage.read_only(self._read)
            except StorageError as exc:
                log.debug("event feed: cannot read the log: %s", exc)
                return
            except Exception:
                if not self._closed:
                    log.exception("event feed: reading the log failed")
                return
            self._read_at = time.monotonic()
            if head <= self._head and horizon <= self._horizon:
                return
            self._publish(head, fresh, horizon)

    def _extend(self, numbered: list[Event]) -> bool:
        """Puts the events a sequencer run numbered (dense, in order) in
        memory when they follow the head; False when they do not (events
        numbered elsewhere in between: read the log instead)."""
        with self._reading:
            fresh = [event for event in numbered if event.seq > self._head]
            if not fresh:
                return True
            if fresh[0].seq != self._head + 1:
                return False
            self._publish(fresh[-1].seq, fresh, self._horizon)
            return True

    def _publish(self, head: int, fresh: list[Event] | None, horizon: int) -> None:
        """Moves the head and the window (holding ``_reading``) and wakes every stream."""
        low = self._low if fresh is not None else head
        with self._changed:
            if fresh is None:
                self._recent.clear()
            self._recent.extend(fresh or ())
            dropped = self._recent[0].seq - 1 if len(self._recent) == self._recent.maxlen else low
            self._low = max(low, dropped)
            self._head = max(head, self._head)
            self._horizon = horizon
            self._changed.notify_all()

    def _read(self, tx: Tx) -> tuple[int, list[Event] | None, int]:
        """The head, the events since the last read (None when more than
        the window holds), and the horizon, read after the events so that
        pruning while they were read is seen."""
        head = tx.event_head()
        fresh = None
        if head - self._head <= (self._recent.maxlen or 0):
            fresh = _events_between(tx, self._head, head) if head > self._head else []
        return head, fresh, tx.event_horizon()

    def _tail(self) -> None:
        while not self._closed:
            self._poke.wait(self._poll)
            self._poke.clear()
            self._refresh()

    def _run_sequencer(self) -> None:
        while not self._closed:
            self._poke.clear()
            self._set_sequencing(True)
            numbered: list[Event] | None = None
            try:
                numbered = self._sequence()
            except StorageError as exc:
                log.debug("event sequencer: %s", exc)
            except Exception:
                if not self._closed:
                    log.exception("event sequencer failed; trying again in %.1f s", self._fallback)
            # A failed run reads the log, and so does one when the log was
            # last read ``fallback`` seconds ago or more (the horizon, and
            # whatever a lost notification would have announced).
            stale = time.monotonic() - self._read_at >= self._fallback
            if numbered is None or stale or not self._extend(numbered):
                self._refresh()
            self._set_sequencing(False)
            self._poke.wait(self._fallback)

    def _set_sequencing(self, running: bool) -> None:
        with self._changed:
            self._sequencing = running
            self._changed.notify_all()

    def _covered(self, payload: str) -> bool:
        """Whether the head already covers a notification's (the head
        after the notifying sequencer's run). While this process's own
        sequencer is running it is about to put the events it numbered in
        memory: wait for it (at most ``poll`` seconds) rather than read
        them too."""
        try:
            head = int(payload)
        except ValueError:
            return False  # no head given: read
        with self._changed:
            return self._changed.wait_for(
                lambda: self._head >= head or not self._sequencing or self._closed, timeout=self._poll
            ) and self._head >= head

    def _listen(self) -> None:
        engine = self._storage.engine
        args, kwargs = engine.dialect.create_connect_args(engine.url)
        kwargs.pop("context", None)
        while not self._closed:
            try:
                with psycopg.connect(*args, **kwargs, autocommit=True, connect_timeout=5) as conn:
                    listen(conn)
                    self._refresh()  # whatever was sequenced before LISTEN took effect
                    while not self._closed:
                        covered = False
                        for note in conn.notifies(timeout=self._fallback, stop_after=1):
                            covered = self._covered(note.payload)
                        if not covered:
                            self._refresh()
            except psycopg.Error as exc:
                if self._closed:
                    return
                log.warning("event feed: LISTEN connection lost (%s); polling until it is back", exc)
                for _ in range(int(self._fallback / self._poll)):
                    if self._closed:
                        return
                    self._refresh()
                    threading.Event().wait(self._poll)


def listen(conn: psycopg.Connection[Any]) -> str:
    """Makes ``conn`` (autocommit, on the schema of the events) listen on
    its schema's events channel; returns the channel's name."""
    named = conn.execute(f"SELECT {EVENTS_CHANNEL}").fetchone()
    assert named is not None
    channel = str(named[0])
    conn.execute(f'LISTEN "{channel}"')
    return channel


def _events_between(tx: Tx, after: int, through: int) -> list[Event]:
    """Every event in (after, through]; positions are dense, so it is complete."""
    found: list[Event] = []
    while after < through:
        batch = tx.events_after(after, (), (), 1000, through - after).events
        if not batch:
            break
        found.extend(batch)
        after = batch[-1].seq
    return found
