"""Wakes event streams when new events commit.

One thread per process keeps the newest committed event position (the
head) and wakes every waiting stream when it moves. On PostgreSQL it waits
on ``LISTEN`` (every transaction that appends events sends ``NOTIFY`` at
commit; see ``SqlTx._append_events``), with a re-read every
``fallback`` seconds in case a notification is lost with its connection.
On SQLite it re-reads the head every ``poll`` seconds, and at once after a
write of this process commits. The head is only a hint to wake up: streams
read the events themselves.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable

import psycopg

from .engine import SqlStorage
from .errors import StorageError
from .sql import EVENTS_CHANNEL

log = logging.getLogger(__name__)


class EventFeed:
    def __init__(self, storage: SqlStorage, *, poll: float = 0.02, fallback: float = 1.0) -> None:
        self._storage = storage
        self._poll = poll
        self._fallback = fallback
        self._changed = threading.Condition()
        self._head = 0
        self._closed = False
        self._poke = threading.Event()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        storage.on_events_committed(self._poke.set)

    @property
    def closed(self) -> bool:
        return self._closed

    def start(self) -> "EventFeed":
        """Starts the thread on first use; later calls do nothing."""
        with self._start_lock:
            if self._thread is None and not self._closed:
                self._refresh()
                self._thread = threading.Thread(target=self._run, name="event-feed", daemon=True)
                self._thread.start()
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

    def _run(self) -> None:
        if self._storage.dialect == "postgresql":
            self._listen()
        else:
            self._tail()

    def _tail(self) -> None:
        while not self._closed:
            self._poke.wait(self._poll)
            self._poke.clear()
            self._refresh()

    def _listen(self) -> None:
        engine = self._storage.engine
        args, kwargs = engine.dialect.create_connect_args(engine.url)
        kwargs.pop("context", None)
        while not self._closed:
            try:
                with psycopg.connect(*args, **kwargs, autocommit=True, connect_timeout=5) as conn:
                    conn.execute(f"LISTEN {EVENTS_CHANNEL}")
                    self._refresh()  # whatever committed before LISTEN took effect
                    while not self._closed:
                        for _ in conn.notifies(timeout=self._fallback, stop_after=1):
                            pass
                        self._refresh()
            except psycopg.Error as exc:
                log.warning("event feed: LISTEN connection lost (%s); polling every %.1f s", exc, self._fallback)
                deadline = time.monotonic() + self._fallback
                while not self._closed and time.monotonic() < deadline:
                    self._poke.wait(self._poll)
                    self._poke.clear()
                    self._refresh()
