"""A deadline for database I/O that the driver cannot give: when a
transaction overruns, its connection's socket is shut down, so a call stuck
on a database that went silent fails at once instead of hanging."""

from __future__ import annotations

import heapq
import itertools
import logging
import socket
import threading
import time

log = logging.getLogger(__name__)


class Watchdog:
    """One thread for every deadline of one engine."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int]] = []
        self._armed: dict[int, int] = {}  # ticket -> socket file descriptor
        self._tickets = itertools.count()
        self._wake = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="db-watchdog", daemon=True)
        self._thread.start()

    def arm(self, fileno: int, seconds: float) -> int:
        ticket = next(self._tickets)
        with self._wake:
            self._armed[ticket] = fileno
            heapq.heappush(self._heap, (time.monotonic() + seconds, ticket))
            if self._heap[0][1] == ticket:
                self._wake.notify()
        return ticket

    def disarm(self, ticket: int) -> bool:
        """True if the deadline had not passed."""
        with self._wake:
            return self._armed.pop(ticket, None) is not None

    def _run(self) -> None:
        with self._wake:
            while True:
                while self._heap and self._heap[0][1] not in self._armed:
                    heapq.heappop(self._heap)
                if not self._heap:
                    self._wake.wait()
                    continue
                deadline, ticket = self._heap[0]
                delay = deadline - time.monotonic()
                if delay > 0:
                    self._wake.wait(delay)
                    continue
                heapq.heappop(self._heap)
                fileno = self._armed.pop(ticket)
                log.warning("database call overran its deadline; closing its connection")
                _shut_down(fileno)


def _shut_down(fileno: int) -> None:
    try:
        sock = socket.socket(fileno=fileno)
    except OSError:
        return
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    finally:
        sock.detach()
