"""The Redis sliding-log limiter: exact across every process sharing one
Redis (or Redis Cluster), with time taken from Redis itself."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from cache.redis_client import lua_source, script

from .base import ALLOWED, Decision, Window, decision_counters

SCRIPT = lua_source("ratelimit", "sliding_window.lua")


def log_key(prefix: str, user_id: str) -> str:
    """One sorted set per requester; the hash tag keeps it on one cluster slot."""
    return f"{prefix}:rl:{{{user_id}}}"


class RedisClient(Protocol):
    """The calls the limiter makes, as ``redis.Redis`` and
    ``redis.cluster.RedisCluster`` (or a wrapper of one) have them."""

    def zrem(self, name: str, *values: str) -> object: ...
    def zadd(self, name: str, mapping: Mapping[str, int], nx: bool = False) -> object: ...
    def pexpire(self, name: str, time: int) -> object: ...


class RedisLimiter:
    """Runs ``sliding_window.lua`` with EVALSHA (reloaded on NOSCRIPT).
    Redis errors propagate; ``FailoverLimiter`` handles outages."""

    def __init__(self, client: RedisClient, windows: Sequence[Window], prefix: str = "sg") -> None:
        if not windows:
            raise ValueError("at least one window is required")
        self.windows = tuple(sorted(windows, key=lambda w: w.seconds))
        self._client = client
        self._prefix = prefix
        self._script = script(client, SCRIPT)
        self._decisions = decision_counters("redis")
        self._window_args = [
            value for w in self.windows for value in (w.limit, w.seconds * 1_000_000)
        ]

    def acquire(self, key: str, token: str) -> Decision:
        allowed, wait_us, window = self._script(
            keys=[log_key(self._prefix, key)], args=[token, *self._window_args]
        )
        self._decisions[bool(allowed)].inc()
        if allowed:
            return ALLOWED
        return Decision(False, int(wait_us) / 1e6, self.windows[int(window) - 1])

    def release(self, key: str, token: str) -> None:
        self._client.zrem(log_key(self._prefix, key), token)

    def seed(self, key: str, entries: list[tuple[str, int]]) -> None:
        """Adds attempts admitted elsewhere ((token, µs) pairs) that the log lacks."""
        if not entries:
            return
        log = log_key(self._prefix, key)
        self._client.zadd(log, {token: at_us for token, at_us in entries}, nx=True)
        self._client.pexpire(log, self.windows[-1].seconds * 1000)
