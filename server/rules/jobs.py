"""Big-account jobs: a user's deletion and the lifting of a promoted user's
blocks, run in bounded batches off the request path (``storage/deletion.py``
holds their statements and explains the lease).

A request runs its own job for at most ``inline_seconds`` (so a small
account is done before the call returns, events and all), then leaves the
rest to the runner every server process has in the background, which
claims any job whose lease has run out, its own or another process's.

Batches are sized by time: each one's size is the last one's scaled by
how long it held other users' counter rows locked (from its first such
lock to its commit; the whole batch when it locked none) to
``batch_seconds`` (at most doubling or halving, between a tenth of
``max_batch`` and ``max_batch`` edges), so that no batch holds their locks
much longer than that.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from prometheus_client import Counter, Gauge, Histogram

from storage.deletion import JobKind
from storage.types import Storage, Tx

log = logging.getLogger(__name__)

BATCH_SECONDS = Histogram(
    "socialgraph_big_account_batch_seconds",
    "Time of one batch transaction of a big-account job (deletion, lifting a promoted user's blocks).",
    ["kind"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5),
)
LONGEST_BATCH = Gauge(
    "socialgraph_big_account_longest_batch_seconds", "Longest batch of a big-account job this process has run."
)
LOCK_HOLD_SECONDS = Histogram(
    "socialgraph_big_account_lock_hold_seconds",
    "How long one batch of a big-account job held other users' counter rows locked, from its first lock to its commit.",
    ["kind"],
    buckets=(
        0.005, 0.01, 0.02, 0.03, 0.04, 0.05, 0.06, 0.07, 0.08, 0.09, 0.1, 0.125, 0.15, 0.2, 0.3, 0.5, 1.0, 2.5,
    ),
)
LONGEST_LOCK_HOLD = Gauge(
    "socialgraph_big_account_longest_lock_hold_seconds",
    "Longest time a batch of a big-account job in this process held other users' counter rows locked.",
)
JOBS_FINISHED = Counter(
    "socialgraph_big_account_jobs_finished_total", "Big-account jobs finished, by kind.", ["kind"]
)

# One batch of a job: removes up to ``limit`` edges for ``user_id`` in
# ``tx`` (with their events); True when nothing is left and the job is done.
Work = Callable[[Tx, str, int], bool]


def now_us() -> int:
    return time.time_ns() // 1000


@dataclass(frozen=True, slots=True)
class JobSettings:
    """How big-account jobs run (see the README's "Big accounts")."""

    # Most edges one batch removes.
    max_batch: int = 250
    # How long one batch aims to hold other users' counter rows locked.
    batch_seconds: float = 0.015
    # How long a claim lasts without a batch renewing it.
    lease_seconds: float = 10.0
    # How often the runner looks for jobs when it has none.
    poll_seconds: float = 1.0


class Jobs:
    """Claims and runs big-account jobs; ``start`` runs the background runner."""

    def __init__(self, storage: Storage, work: Mapping[JobKind, Work], settings: JobSettings = JobSettings()) -> None:
        self._storage = storage
        self._work = dict(work)
        self.settings = settings
        self.owner = uuid.uuid4().hex
        # Below this a batch is mostly its fixed cost (a dozen statements and
        # a commit), so a slow database only makes the job crawl.
        self._floor = max(1, settings.max_batch // 10)
        self._size = min(settings.max_batch, 100)
        self._size_lock = threading.Lock()
        self.longest_batch = 0.0
        self.longest_lock_hold = 0.0
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    # ---------------------------------------------------------------- running

    def run(self, user_id: str, kind: JobKind, budget: float | None) -> bool:
        """Runs ``user_id``'s job of ``kind`` for at most ``budget`` seconds
        (None: to the end) when no one else holds it; True when it is done.
        What is left goes back to the runner at once."""
        job = self._claim((user_id, kind))
        if job is None:
            self._wake.set()
            return False
        return self._run(job, None if budget is None else time.monotonic() + budget)

    def run_next(self) -> bool:
        """Claims the oldest open job and runs it to the end; False when there was none."""
        job = self._claim(None)
        if job is None:
            return False
        self._run(job, None)
        return True

    def _claim(self, job: tuple[str, JobKind] | None) -> tuple[str, JobKind] | None:
        lease_us = int(self.settings.lease_seconds * 1_000_000)
        claimed = self._storage.read_write(lambda tx: tx.claim_job(self.owner, now_us(), lease_us, job))
        return None if claimed is None else (claimed[0], JobKind(claimed[1]))

    def _run(self, job: tuple[str, JobKind], deadline: float | None) -> bool:
        user_id, kind = job
        work = self._work[kind]
        lease_us = int(self.settings.lease_seconds * 1_000_000)

        def batch(size: int, last: list[Tx]) -> Callable[[Tx], bool | None]:
            def run(tx: Tx) -> bool | None:
                last[:] = [tx]  # the attempt that commits is the last one
                if not tx.renew_job(user_id, kind, self.owner, now_us() + lease_us):
                    return None  # another process took it over
                return work(tx, user_id, size)

            return run

        while True:
            size = self.batch_size()
            started = time.monotonic()
            last: list[Tx] = []
            try:
                done = self._storage.read_write(batch(size, last))
            except Exception:
                # The batch rolled back; whoever claims the job next redoes it.
                with contextlib.suppress(Exception):
                    self._release(job)
                raise
            self._measured(kind, size, time.monotonic() - started, last[0].lock_hold() if last else None)
            if done is None:
                return False
            if done:
                JOBS_FINISHED.labels(kind.name.lower()).inc()
                return True
            if self._stop.is_set() or (deadline is not None and time.monotonic() >= deadline):
                self._release(job)
                return False

    def _release(self, job: tuple[str, JobKind]) -> None:
        self._storage.read_write(lambda tx: tx.release_jobs(self.owner, job))
        self._wake.set()

    # ----------------------------------------------------------------- sizing

    def batch_size(self) -> int:
        """The size the next batch gets."""
        with self._size_lock:
            return self._size

    def _measured(self, kind: JobKind, size: int, seconds: float, held: float | None = None) -> None:
        """Records a batch that took ``seconds`` and held other users' locks
        for ``held`` (None: it took none), and sizes the next one."""
        BATCH_SECONDS.labels(kind.name.lower()).observe(seconds)
        if held is not None:
            LOCK_HOLD_SECONDS.labels(kind.name.lower()).observe(held)
        target = self.settings.batch_seconds
        scaled = int(size * target / max(seconds if held is None else held, 1e-4))
        with self._size_lock:
            self.longest_batch = max(self.longest_batch, seconds)
            LONGEST_BATCH.set(self.longest_batch)
            if held is not None:
                self.longest_lock_hold = max(self.longest_lock_hold, held)
                LONGEST_LOCK_HOLD.set(self.longest_lock_hold)
            self._size = max(self._floor, min(self.settings.max_batch, 2 * size, max(scaled, size // 2)))

    # ------------------------------------------------------------- background

    def start(self) -> Jobs:
        self._thread = threading.Thread(target=self._loop, name="big-account-jobs", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stops after the batch in progress and gives its lease back."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                while not self._stop.is_set() and self.run_next():
                    pass
            except Exception:
                log.exception("big-account job failed; trying again in %.1f s", self.settings.poll_seconds)
                self._wake.clear()  # set by the failed job's release: pause before claiming it again
            self._wake.wait(self.settings.poll_seconds)
            self._wake.clear()
