"""Fairness and load shedding between client connections.

grpc hands every call to one executor. ``FairExecutor`` keeps a queue per
client connection and serves them round robin, so a connection with a
hundred expensive calls queued delays another connection's call by one call
of each busy connection, not by the whole flood. When the process has
``limit`` calls in flight, a new call from a connection that already has at
least its share (``limit`` divided among the connections with calls in
flight) is shed: it runs at once on a thread of its own and fails
``RESOURCE_EXHAUSTED`` / ``OVERLOADED`` with ``RetryInfo``. A connection with
fewer calls than its share is still served, so a flood sheds its own calls
first.

A call that streams its response (WatchService.Watch, health Watch) holds
its thread for the stream's whole life: it is queued and served like any
other call, but it neither counts toward ``limit`` nor is ever shed, so
open streams do not make the process shed unary calls and a stream is not
refused by a limit meant for short calls (Watch has its own cap,
``--watch-streams``).

The executor learns the connection and marks a shed call through what grpc
passes to ``submit``: the call's ``contextvars.Context`` (grpc submits
``context.run``) and its event (whose ``call.peer()`` names the connection).
Anything else is queued under one shared key and never shed.

Writes may wait on a row lock for as long as another transaction holds it
(every block of one celebrity waits for that user's counter row), each
holding its thread meanwhile. So writes run on at most three quarters of
the threads that streams leave (at least one): the rest stay free for
reads, which take no row locks, and a pile-up of writes on one hot row cannot make
unrelated reads wait for a thread (streams, which hold a thread for their
life, are left out first). While the writes' threads are all busy, a
connection's oldest read runs ahead of its queued writes.
"""

from __future__ import annotations

import contextvars
import threading
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from concurrent import futures
from typing import Any, ParamSpec, TypeVar

import grpc
from prometheus_client import Counter, Gauge

from .errors import status_for
from .interceptors import Behavior, UnaryWrapper
from .rules import Overloaded

_SHED: contextvars.ContextVar[tuple[int, int] | None] = contextvars.ContextVar("socialgraph_shed", default=None)

SHED = Counter("socialgraph_rpcs_shed_total", "Calls refused because the process was overloaded (OVERLOADED).")
IN_FLIGHT = Gauge("socialgraph_rpcs_in_flight", "Calls running or queued in this process.")

# How long a shed caller is told to wait.
RETRY_AFTER = 1.0

P = ParamSpec("P")
T = TypeVar("T")
# A call to run: its future, function, arguments and keyword arguments.
_Work = tuple[futures.Future[Any], Callable[..., Any], tuple[Any, ...], dict[str, Any]]
# The calls that only read, by method name (the part after the service):
# the services' reads, health and reflection. Any other call may write.
_READS = frozenset(
    {
        "BatchGetRelationships", "CanInteract", "FilterInteractable", "GetCounts", "GetMutualConnections",
        "GetRelationship", "GetStats", "GetUser", "ListBlocked", "ListConnections", "ListFeedSources",
        "ListFollowers", "ListFollowing", "ListIncomingConnectionRequests", "ListOutgoingConnectionRequests",
        "ListReports", "Watch", "Check", "ServerReflectionInfo",
    }
)


class FairExecutor(futures.Executor):
    def __init__(self, max_workers: int, limit: int, thread_name_prefix: str = "rpc") -> None:
        self._limit = limit
        # Idle worker threads wait on ``_lock``, the shed thread on
        # ``_shed_ready``; one mutex guards both. A new call wakes one idle
        # thread, not every one: all 32 woken to find one call cost 12 % of
        # the server's CPU under writes.
        mutex = threading.Lock()
        self._lock = threading.Condition(mutex)
        self._shed_ready = threading.Condition(mutex)
        # Keys with queued work, in serving order.
        self._queues: OrderedDict[object, deque[tuple[_Work, bool, bool]]] = OrderedDict()
        self._in_flight: dict[object, int] = {}
        self._total = 0
        self._writes = 0
        self._streams = 0
        # Queued calls that only read: while the writes' threads are all
        # busy, a thread looks for one only when there is one.
        self._queued_reads = 0
        self._max_workers = max_workers
        self._shed: deque[_Work] = deque()
        self._shutdown = False
        self._threads = [
            threading.Thread(target=self._work, name=f"{thread_name_prefix}-{i}", daemon=True)
            for i in range(max_workers)
        ]
        self._threads.append(threading.Thread(target=self._work_shed, name=f"{thread_name_prefix}-shed", daemon=True))
        for thread in self._threads:
            thread.start()

    def submit(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> futures.Future[T]:
        future: futures.Future[T] = futures.Future()
        key = _connection(args)
        context = getattr(fn, "__self__", None)
        counted = not _streaming(args)
        write = _writes(args)
        with self._lock:
            if self._shutdown:
                raise RuntimeError("cannot schedule new calls after shutdown")
            mine = self._in_flight.get(key, 0)
            share = max(1, self._limit // max(1, len(self._in_flight)))
            sheddable = counted and self._total >= self._limit and mine >= share
            if sheddable and isinstance(context, contextvars.Context):
                context.run(_SHED.set, (self._total, self._limit))
                SHED.inc()
                self._shed.append((future, fn, args, kwargs))
                self._shed_ready.notify()
            else:
                if counted:
                    self._in_flight[key] = mine + 1
                    self._total += 1
                    IN_FLIGHT.inc()
                self._queued_reads += not write
                self._queues.setdefault(key, deque()).append(((future, fn, args, kwargs), counted, write))
                self._lock.notify()
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._lock:
            self._shutdown = True
            self._lock.notify_all()
            self._shed_ready.notify_all()
        if wait:
            for thread in self._threads:
                thread.join()

    def _next(self) -> tuple[object, tuple[_Work, bool, bool]] | None:
        """The oldest call of the first connection in line whose oldest call
        may run now: a write only while the writes have a thread left (None
        on shutdown)."""
        with self._lock:
            while True:
                if self._shutdown and not self._queues:
                    return None
                # A quarter of the threads not taken by streams stays for
                # reads, and at least one when there are two or more.
                free = self._max_workers - self._streams
                writes_full = self._writes >= max(1, free - max(1, free // 4))
                found = self._runnable(writes_full)
                if found is not None:
                    break
                self._lock.wait()
            key, index = found
            queue = self._queues.pop(key)
            work = queue[index]
            del queue[index]
            if queue:
                self._queues[key] = queue  # to the back of the line
            if work[2]:
                self._writes += 1
            else:
                self._queued_reads -= 1
                if not work[1]:
                    self._streams += 1
            return key, work

    def _runnable(self, writes_full: bool) -> tuple[object, int] | None:
        """The first connection in line with a call that may run, and that
        call's place in its queue: its oldest, or while writes may not run,
        its oldest read."""
        if writes_full and not self._queued_reads:
            return None  # only writes are queued: none may run
        for key, queue in self._queues.items():
            if not writes_full:
                return key, 0
            index = next((i for i, (_work, _counted, write) in enumerate(queue) if not write), None)
            if index is not None:
                return key, index
        return None

    def _work(self) -> None:
        while (item := self._next()) is not None:
            key, (work, counted, write) = item
            # Hold no reference to a finished call: grpc frees its stream
            # when the call object goes.
            del item
            try:
                _run(*work)
            finally:
                del work
                if write or not counted:
                    with self._lock:
                        if write:
                            self._writes -= 1
                        else:
                            self._streams -= 1
                        # A thread for a write waiting on the quota.
                        self._lock.notify()
                if counted:
                    self._done(key)

    def _done(self, key: object) -> None:
        with self._lock:
            self._total -= 1
            IN_FLIGHT.dec()
            left = self._in_flight[key] - 1
            if left:
                self._in_flight[key] = left
            else:
                del self._in_flight[key]

    def _work_shed(self) -> None:
        while True:
            with self._lock:
                while not self._shed:
                    if self._shutdown:
                        return
                    self._shed_ready.wait()
                work = self._shed.popleft()
            _run(*work)
            del work


def _run(future: futures.Future[Any], fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    if not future.set_running_or_notify_cancel():
        return
    try:
        future.set_result(fn(*args, **kwargs))
    except BaseException as exc:
        future.set_exception(exc)


def _streaming(args: Sequence[Any]) -> bool:
    """Whether a call grpc submits streams its response (grpc runs those
    through ``_stream_response_in_pool``)."""
    return getattr(args[0] if args else None, "__name__", "") == "_stream_response_in_pool"


def _writes(args: Sequence[Any]) -> bool:
    """Whether a call grpc submits may write (anything but a known read)."""
    try:
        # A method registered with the server (the generated add_*_to_server)
        # is named by the event's tag; any other by its call details.
        event = args[1]
        method = event.call_details.method or event.tag
    except (IndexError, AttributeError, TypeError):
        return False
    if isinstance(method, bytes):
        method = method.decode()
    if not isinstance(method, str) or not method:
        return False
    return method.rsplit("/", 1)[-1] not in _READS


def _connection(args: Sequence[Any]) -> object:
    """The client connection of a call grpc submits, or one shared key."""
    try:
        return args[1].call.peer()
    except (IndexError, AttributeError, TypeError):
        return None


class ShedInterceptor(UnaryWrapper):
    """Makes a call the executor shed fail with OVERLOADED before it does any work."""

    def wrap_unary(self, method: str, behavior: Behavior) -> Behavior:
        return _sheddable(behavior)


def _sheddable(behavior: Behavior) -> Behavior:
    def sheddable(request: Any, context: grpc.ServicerContext) -> Any:
        shed = _SHED.get()
        if shed is not None:
            context.abort_with_status(status_for(Overloaded(shed[0], shed[1], RETRY_AFTER)))
        return behavior(request, context)

    return sheddable
