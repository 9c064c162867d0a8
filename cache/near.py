"""The near layer: the in-process layer in front of the Redis layer, kept
coherent by a feed every process hears.

Each process keeps the counters and relationships it has read in memory (an
``InProcessCounterCache`` over the ``RedisCounterCache``, an
``InProcessRelationshipCache`` over the ``RedisRelationshipCache``), so a
hit costs no round trip. Its own committed writes update that memory before
they answer. Every other process's writes reach it through Redis pub/sub:
the script that stores counters in Redis also announces them on
``{prefix}:counts``, and ``CounterFeed`` applies each announcement (keeping
the higher version, so a late one never undoes a newer value). Relationship
entries need nothing more: they are valid only while both users' counter
versions are the ones they were read at.

A process that is not subscribed (at start, during a Redis outage, after a
dropped or silent connection) reads through to Redis and SQL, and forgets its
memory whenever the subscription starts or stops, so nothing learned while
it could have missed an announcement is served afterwards. While subscribed,
another process's write is seen here as soon as its announcement arrives.
A process that could not store its counters in Redis drops the entries
concerned there once Redis answers again, and announces that too, so every
process forgets its copies as well. The feed proves nothing about writers
that died before announcing: every entry here is still served only within
the staleness bound (``cache/freshness.py``).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from storage.schema import COUNTER_COLUMNS
from storage.types import Counts, VersionedCounts

from .local import InProcessCounterCache, InProcessRelationshipCache
from .redis_client import REDIS_ERRORS, Client
from .versions import COUNTS_FORMAT

log = logging.getLogger(__name__)

_SILENCE = 1.0  # seconds without a message before the feed pings Redis
_DEAD = 3.0  # seconds without any answer before the subscription counts as lost


class CounterFeed:
    """Applies the counters other processes store in Redis to this process's
    in-process caches; ``live`` while subscribed. ``origin`` names this
    process's own announcements, already applied when its writes committed."""

    def __init__(
        self,
        client: Client,
        channel: str,
        origin: str,
        counters: InProcessCounterCache,
        relationships: InProcessRelationshipCache,
        retry_after: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.live = False
        self._client = client
        self._channel = channel
        self._origin = origin.encode()
        self._counters = counters
        self._relationships = relationships
        self._retry_after = retry_after
        self._clock = clock
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="counter-feed", daemon=True)

    def start(self) -> CounterFeed:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def wait_live(self, timeout: float) -> bool:
        end = self._clock() + timeout
        while not self.live and self._clock() < end:
            time.sleep(0.01)
        return self.live

    def _run(self) -> None:
        while not self._stop.is_set():
            pubsub = None
            try:
                pubsub = self._client.pubsub(ignore_subscribe_messages=False)
                pubsub.subscribe(self._channel)
                self._listen(pubsub)
            except REDIS_ERRORS as exc:
                if self.live:
                    log.warning("counter feed: lost its Redis subscription (%s); reading through to Redis", exc)
            finally:
                self._set_live(False)
                if pubsub is not None:
                    with contextlib.suppress(*REDIS_ERRORS):
                        pubsub.close()
            self._stop.wait(self._retry_after)

    def _listen(self, pubsub: Any) -> None:
        heard = pinged = self._clock()
        while not self._stop.is_set():
            message = pubsub.get_message(timeout=_SILENCE)
            now = self._clock()
            if message is None:
                if now - heard > _DEAD:
                    raise ConnectionError("no answer from Redis")
                if now - pinged > _SILENCE:
                    pubsub.ping()
                    pinged = now
                continue
            heard = now
            kind = message["type"]
            if kind == "subscribe":
                self._set_live(True)
            elif kind == "message":
                self._apply(message["data"])

    def _apply(self, data: bytes) -> None:
        """``ORIGIN KEY VERSION FIELD VALUE ...`` as set_counts.lua announces
        a stored entry; ``ORIGIN KEY`` for an entry dropped after an outage.
        Keys of another counter format are not this process's entries."""
        if data.startswith(self._origin):
            return
        _origin, key, *stored = data.decode().split(" ")
        if f":{COUNTS_FORMAT}:{{" not in key:
            return  # a hash of another format (a rolling deploy): this process never reads it
        user_id = key[key.index("{") + 1 : key.rindex("}")]
        if not stored:
            self._counters.discard([user_id])
            return
        version, *pairs = stored
        values = dict(zip(pairs[::2], pairs[1::2], strict=False))
        counts = Counts(user_id, *(int(values.get(name, 0)) for name in COUNTER_COLUMNS))
        self._counters.publish({user_id: VersionedCounts(counts, int(version), int(values.get("t", 0)))})

    def _set_live(self, live: bool) -> None:
        if live == self.live:
            return
        # Forget everything on both edges: what was learned while an
        # announcement could have been missed must not be served.
        self._counters.clear()
        self._relationships.clear()
        self.live = live
        if live:
            log.info("counter feed: subscribed; in-process caches in use")


class Near:
    """Reads the in-process layer while the feed is live, the layer below otherwise.
    ``local`` and ``remote`` are both counter layers or both relationship layers."""

    def __init__(self, feed: CounterFeed, local: Any, remote: Any) -> None:
        self._feed = feed
        self._local = local
        self._remote = remote

    def get(self, *args: Any) -> Any:
        return (self._local if self._feed.live else self._remote).get(*args)

    def interactable(self, *args: Any) -> dict[str, bool]:
        allowed: dict[str, bool] = (self._local if self._feed.live else self._remote).interactable(*args)
        return allowed
