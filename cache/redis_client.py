"""Redis for every part of the server: clients from ``--redis-url``, the
one set of errors that means "Redis failed this call", and the one way Lua
scripts run.

``redis://`` and ``rediss://`` name one server, ``redis+cluster://`` and
``rediss+cluster://`` a Redis Cluster (any one node; the rest are discovered).
"""

from __future__ import annotations

import threading
from importlib import resources
from typing import Any, Union, cast

from redis import Redis
from redis.backoff import NoBackoff
from redis.cluster import RedisCluster
from redis.commands.core import Script
from redis.exceptions import ConnectionError, RedisClusterException, RedisError
from redis.retry import Retry

# What a Redis call raises when Redis is down, slow or refuses it; the limiter
# and the caches catch exactly these and fall back to SQL.
REDIS_ERRORS = (RedisError, RedisClusterException)

_CLUSTER_SCHEMES = {"redis+cluster://": "redis://", "rediss+cluster://": "rediss://"}

Client = Union[Redis, "LazyCluster", Any]  # Any: a test's wrapper around one of them


def connect(url: str, timeout: float) -> Client:
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


def lua_source(package: str, name: str) -> str:
    """The text of the Lua script ``lua/{name}`` shipped in ``package``."""
    return resources.files(package).joinpath(f"lua/{name}").read_text()


def script(client: Client, source: str) -> Script:
    """A Lua script run through redis-py's ``Script``, the one way the server
    runs scripts: EVALSHA, loaded again after NOSCRIPT (a restarted or
    flushed Redis), also inside a pipeline (``run(keys=..., args=...,
    client=pipe)``). Made from bytes, so making it asks nothing of the client
    (a cluster client is made on first use)."""
    return Script(cast(Any, client), source.encode())


class LazyCluster:
    """A RedisCluster made on first use: building one contacts the cluster,
    and a cluster that is down when the server starts must not stop it."""

    def __init__(self, url: str, options: dict[str, Any]) -> None:
        self._url = url
        self._options = options
        self._client: RedisCluster | None = None
        self._lock = threading.Lock()

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
