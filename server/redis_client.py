"""Redis clients from ``--redis-url``: ``redis://`` and ``rediss://`` for one
server, ``redis+cluster://`` and ``rediss+cluster://`` for Redis Cluster
(any one node; the rest are discovered)."""

from __future__ import annotations

import threading
from typing import Any

from redis import Redis
from redis.backoff import NoBackoff
from redis.cluster import RedisCluster
from redis.commands.core import Script
from redis.exceptions import ConnectionError, RedisClusterException
from redis.retry import Retry

_CLUSTER_SCHEMES = {"redis+cluster://": "redis://", "rediss+cluster://": "rediss://"}


def connect(url: str, timeout: float) -> Redis | LazyCluster:
    """A client with short socket timeouts and one immediate retry (for a
    pooled connection that died), so an outage costs milliseconds, not seconds."""
    options: dict[str, Any] = {
        "socket_timeout": timeout,
        "socket_connect_timeout": timeout,
        "retry": Retry(NoBackoff(), 1),
    }
    for scheme, plain in _CLUSTER_SCHEMES.items():
        if url.startswith(scheme):
            return LazyCluster(plain + url.removeprefix(scheme), options)
    if not url.startswith(("redis://", "rediss://", "unix://")):
        raise ValueError(f"unsupported Redis URL {url!r}: use redis://, rediss:// or redis+cluster://")
    return Redis.from_url(url, **options)


class LazyCluster:
    """A RedisCluster made on first use: building one contacts the cluster,
    and a cluster that is down when the server starts must not stop it."""

    def __init__(self, url: str, options: dict[str, Any]) -> None:
        self._url = url
        self._options = options
        self._client: RedisCluster | None = None
        self._lock = threading.Lock()

    def register_script(self, script: str) -> Script:
        # Bytes: a str script would ask the (not yet made) client for its encoder.
        return Script(self, script.encode())  # type: ignore[arg-type]  # it forwards every call Script makes

    def _cluster(self) -> RedisCluster:
        if self._client is None:
            with self._lock:
                if self._client is None:
                    try:
                        self._client = RedisCluster.from_url(self._url, **self._options)
                    except RedisClusterException as exc:
                        raise ConnectionError(f"Redis Cluster at {self._url} cannot be reached: {exc}") from exc
        return self._client

    def __getattr__(self, name: str) -> Any:
        return getattr(self._cluster(), name)
