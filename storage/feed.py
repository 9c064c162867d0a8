"""Gives events their positions and wakes event streams when new ones commit.

One feed per process keeps the newest event position (the head) and wakes
every waiting stream when it moves; the head is only a hint to wake up:
streams read the events themselves.

On PostgreSQL the feed also runs the sequencer (``sequence``, which gives
committed events their positions; see ``SqlTx.sequence_events``): at once
after a write of this process commits, and every ``fallback`` seconds for
events whose writer died before sequencing them. A second thread waits on
``LISTEN``: every sequencer run that gave positions, in any process, sends
``NOTIFY`` at commit. On SQLite writers give positions themselves, and the
feed re-reads the head every ``poll`` seconds (other processes' writes) and
at once after a write of this process commits.
"""

from __future__ import annotations

import logging
import threading
from typing import Callable

import psycopg

from .engine import SqlStorage
from .errors import StorageError
from .sql import EVENTS_CHANNEL

log = logging.getLogger(__name__)


class EventFeed:
    def __init__(
        self,
        storage: SqlStorage,
        sequence: Callable[[], None],
        *,
        poll: float = 0.02,
        fallback: float = 1.0,
    ) -> None:
        self._storage = storage
        self._sequence = sequence
        self._poll = poll
        self._fallback = fallback
        self._changed = threading.Condition()
        self._head = 0
        self._closed = False
        self._poke = threading.Event()
        self._threads: list[threading.Thread] = []
        self._start_lock = threading.Lock()
        storage.on_events_committed(self._poke.set)

    @property
    def closed(self) -> bool:
        return self._closed

    def start(self) -> "EventFeed":
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

    def wake(self) -> None:
        """Wakes every waiting stream to check its ``stop`` (one was cancelled)."""
        with self._changed:
            self._changed.notify_all()

    def close(self) -> None:
        self._closed = True
        self._poke.set()
        self.wake()

    def _refresh(self) -> None:
        try:
            head = self._storage.read_only(lambda tx: tx.event_head())
        except StorageError as exc:
            log.debug("event feed: cannot read the head: %s", exc)
            return
        except Exception:
            if not self._closed:
                log.exception("event feed: reading the head failed")
            return
        if head > self._head:
            with self._changed:
                self._head = head
                self._changed.notify_all()

    def _tail(self) -> None:
        while not self._closed:
            self._poke.wait(self._poll)
            self._poke.clear()
            self._refresh()

    def _run_sequencer(self) -> None:
        while not self._closed:
            self._poke.wait(self._fallback)
            self._poke.clear()
            if self._closed:
                return
            try:
                self._sequence()
            except StorageError as exc:
                log.debug("event sequencer: %s", exc)
            except Exception:
                if not self._closed:
                    log.exception("event sequencer failed; trying again in %.1f s", self._fallback)
            self._refresh()

    def _listen(self) -> None:
        engine = self._storage.engine
        args, kwargs = engine.dialect.create_connect_args(engine.url)
        kwargs.pop("context", None)
        while not self._closed:
            try:
                with psycopg.connect(*args, **kwargs, autocommit=True, connect_timeout=5) as conn:
                    conn.execute(f"LISTEN {EVENTS_CHANNEL}")
                    self._refresh()  # whatever was sequenced before LISTEN took effect
                    while not self._closed:
                        for _ in conn.notifies(timeout=self._fallback, stop_after=1):
                            pass
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
