"""socialgraph.v1.WatchService: the event log as a stream.

A stream near the head takes its events from the process's feed (one read
of the log per change, shared by every stream); one further behind reads
the log itself. Each stream holds one gRPC worker thread and at most one
read (``READ_LIMIT`` events) in memory: the next event is produced only after
the previous one was handed to the transport, so a consumer that stops
reading stalls its own stream under HTTP/2 flow control and never grows the
server. At most ``max_streams`` streams run per process."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import grpc
from prometheus_client import Counter, Gauge

from socialgraph.v1 import watch_pb2 as pb
from socialgraph.v1 import watch_pb2_grpc as pb_grpc
from storage.feed import EventFeed
from storage.types import EventKind

from .. import convert
from .. import validate as v
from ..errors import translate_errors
from ..rules import EventLog, ShuttingDown, TooManyStreams
from ..rules.events import READ_LIMIT, encode_cursor

STREAMS = Gauge("socialgraph_watch_streams", "Watch streams open in this process.")
DELIVERED = Counter("socialgraph_events_delivered_total", "Events sent on Watch streams.")


@translate_errors
class WatchServicer(pb_grpc.WatchServiceServicer):
    def __init__(self, log: EventLog, feed: EventFeed, *, checkpoint: float = 5.0, max_streams: int = 16) -> None:
        self._log = log
        self._feed = feed
        self._checkpoint = checkpoint
        self._max_streams = max_streams
        self._slots = threading.BoundedSemaphore(max_streams)

    def Watch(self, request: pb.WatchRequest, context: grpc.ServicerContext) -> Iterator[pb.WatchResponse]:
        kinds = [int(v.enum_value(kind, f"kinds[{i}]", EventKind)) for i, kind in enumerate(request.kinds)]
        user_ids = v.user_ids(request.user_ids, "user_ids", required=False)
        kind_set, user_set = frozenset(kinds), frozenset(user_ids)
        position = self._log.start(request.after_cursor)
        if not self._slots.acquire(blocking=False):
            raise TooManyStreams(self._max_streams)
        STREAMS.inc()
        try:
            self._feed.start()
            ended = threading.Event()

            def on_end() -> None:
                ended.set()
                self._feed.wake()

            context.add_callback(on_end)
            yield _checkpoint(position)
            quiet_since = time.monotonic()
            while not ended.is_set():
                if self._feed.closed:
                    raise ShuttingDown()
                found = self._feed.recent(position, kind_set, user_set, READ_LIMIT) or self._log.read(
                    position, kinds, user_ids
                )
                for event in found.events:
                    DELIVERED.inc()
                    yield pb.WatchResponse(event=convert.event(event, self._log.token(event)))
                position = found.through
                now = time.monotonic()
                if found.events:
                    quiet_since = now
                elif now - quiet_since >= self._checkpoint:
                    yield _checkpoint(position)
                    quiet_since = now
                if position < found.head:
                    continue
                self._feed.wait(position, max(self._checkpoint - (now - quiet_since), 0.0), ended.is_set)
        finally:
            STREAMS.dec()
            self._slots.release()


def _checkpoint(position: int) -> pb.WatchResponse:
    return pb.WatchResponse(
        checkpoint=pb.Checkpoint(cursor=encode_cursor(position), at=convert.timestamp(time.time_ns() // 1000))
    )
