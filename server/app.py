"""Wiring: settings in, a running gRPC server out."""

from __future__ import annotations

import logging
import signal
import threading
from concurrent import futures

import grpc
from redis import Redis
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from ratelimit import InProcessLimiter
from ratelimit.failover import FailoverLimiter
from ratelimit.redis import RedisLimiter
from socialgraph.v1 import admin_pb2, social_graph_pb2, watch_pb2
from storage import SqlStorage, StorageUnavailable, open_storage
from storage.cache import RedisCounterCache
from storage.counters import InProcessCounterCache, SqlCounters
from storage.feed import EventFeed
from storage.near import CounterFeed, Near
from storage.relationships import InProcessRelationshipCache, RedisRelationshipCache, SqlRelationships
from storage.migrate import upgrade

from . import redis_client
from .handlers import add_service
from .metrics import MetricsInterceptor, serve_metrics
from .rules import EventLog, Graph, Policy
from .rules.graph import now_us
from .servicers import AdminServicer, SocialGraphServicer, WatchServicer
from .settings import Settings

log = logging.getLogger(__name__)

SERVICE_NAMES = (
    social_graph_pb2.DESCRIPTOR.services_by_name["SocialGraphService"].full_name,
    admin_pb2.DESCRIPTOR.services_by_name["AdminService"].full_name,
    watch_pb2.DESCRIPTOR.services_by_name["WatchService"].full_name,
)


class PortInUse(RuntimeError):
    pass


def make_graph(settings: Settings, storage: SqlStorage) -> Graph:
    """The rules over ``storage``, with the limiter and the counter and
    relationship caches the settings ask for: Redis-backed (falling back
    in-process while Redis is down) with ``redis_url``, in-process without."""
    policy = Policy(connection_limit=settings.connection_limit, auto_follow=settings.auto_follow)
    local_limiter = InProcessLimiter(settings.windows)
    if settings.redis_url:
        client = redis_client.connect(settings.redis_url, settings.redis_timeout)
        limiter = FailoverLimiter(RedisLimiter(client, settings.windows), local_limiter)
        return Graph(storage, limiter, policy, **cached_readers(storage, client, settings.counter_cache_ttl))
    if settings.workers == 1:
        return Graph(storage, local_limiter, policy, **cached_readers(storage))
    # Several processes without Redis: an in-process cache would go stale
    # across them, so counters and relationships come from SQL; the limit
    # holds per process.
    return Graph(storage, local_limiter, policy)


def cached_readers(storage: SqlStorage, client=None, ttl_seconds: int = 3600, prefix: str = "sg") -> dict:
    """The counter and relationship caches over ``storage``, as ``Graph``
    keyword arguments; every committed write publishes its counters to them.

    Without ``client`` they are in-process. With a Redis server they live in
    Redis, behind an in-process tier kept in step by the counter feed
    (storage/near.py); with a Redis Cluster, in Redis alone."""
    if client is None:
        counters = InProcessCounterCache(SqlCounters(storage))
        storage.on_counters_committed(counters.publish)
        return {"counters": counters, "relationships": InProcessRelationshipCache(SqlRelationships(storage), counters)}
    near = isinstance(client, Redis)
    redis_counters = RedisCounterCache(
        client, SqlCounters(storage), ttl_seconds=ttl_seconds, prefix=prefix, announce=near
    )
    redis_relationships = RedisRelationshipCache(
        client, SqlRelationships(storage), redis_counters, ttl_seconds=ttl_seconds
    )
    storage.on_counters_committed(redis_counters.publish)
    if not near:
        return {"counters": redis_counters, "relationships": redis_relationships}
    local_counters = InProcessCounterCache(redis_counters)
    local_relationships = InProcessRelationshipCache(redis_relationships, local_counters)
    storage.on_counters_committed(local_counters.publish)
    feed = CounterFeed(client, redis_counters.channel, redis_counters.origin, local_counters, local_relationships).start()
    return {
        "counters": Near(feed, local_counters, redis_counters),
        "relationships": Near(feed, local_relationships, redis_relationships),
    }


def add_services(server: grpc.Server, graph: Graph, watch: WatchServicer | None = None) -> None:
    """The three services over ``graph``; without ``watch``, a Watch service
    with the default settings."""
    if watch is None:
        events = EventLog(graph.storage, now_us)
        watch = WatchServicer(events, EventFeed(graph.storage, events.sequence))
    add_service(server, SocialGraphServicer(graph), social_graph_pb2.DESCRIPTOR.services_by_name["SocialGraphService"])
    add_service(server, AdminServicer(graph), admin_pb2.DESCRIPTOR.services_by_name["AdminService"])
    add_service(server, watch, watch_pb2.DESCRIPTOR.services_by_name["WatchService"])


class EventPruner:
    """Removes events older than the retention in the background, one
    bounded batch per transaction, so no request waits on it."""

    def __init__(self, log: EventLog, retention: float) -> None:
        self._log = log
        self._retention_us = int(retention * 1_000_000)
        # Often enough that a short retention holds to about a tenth of it.
        self._interval = min(max(retention / 10, 0.05), 60.0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="event-pruner", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                while self._log.prune(self._retention_us) and not self._stop.wait(0.01):
                    pass
            except Exception:
                log.exception("pruning events failed; trying again in %.1f s", self._interval)


class HealthMonitor:
    """Reports SERVING while the database answers, NOT_SERVING while it does
    not. A probe that hangs counts as unreachable after ``interval`` seconds."""

    def __init__(self, storage: SqlStorage, servicer: health.HealthServicer, interval: float) -> None:
        self._storage = storage
        self._servicer = servicer
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="health-monitor", daemon=True)
        self._prober = futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="health-probe")
        self._probe: futures.Future | None = None
        self._serving: bool | None = None

    def start(self) -> None:
        self.check()
        self._thread.start()

    def check(self) -> bool:
        if self._probe is None or self._probe.done():
            self._probe = self._prober.submit(self._storage.ping)
        try:
            self._probe.result(timeout=max(self._interval, 1.0))
            serving, reason = True, None
        except StorageUnavailable as exc:
            serving, reason = False, exc
        except futures.TimeoutError:
            serving, reason = False, "no answer"
        if not serving and self._serving is not False:
            log.warning("database unreachable: %s", reason)
        if serving != self._serving:
            self._set(health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING)
            if serving and self._serving is False:
                log.info("database reachable again")
            self._serving = serving
        return serving

    def stop(self) -> None:
        self._stop.set()
        self._prober.shutdown(wait=False, cancel_futures=True)
        self._set(health_pb2.HealthCheckResponse.NOT_SERVING)

    def _set(self, status) -> None:
        for name in ("", *SERVICE_NAMES):
            self._servicer.set(name, status)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self.check()


class App:
    """A configured server: storage, rules, services, health and reflection."""

    def __init__(self, settings: Settings, *, worker: bool = False) -> None:
        """``worker``: one of several processes on one port (see server/workers.py),
        which share the port and leave migrations and metrics to their parent."""
        self.settings = settings
        self.worker = worker
        self.storage = open_storage(
            settings.database_url, pool_size=settings.threads, deadline=settings.database_timeout
        )
        if settings.migrate_on_start and not worker:
            upgrade(self.storage)
        self.graph = make_graph(settings, self.storage)
        message_limit = settings.max_message_bytes
        self.server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=settings.threads, thread_name_prefix="rpc"),
            interceptors=[MetricsInterceptor()],
            options=[
                # One process fails on a port that is already taken instead of
                # sharing it; workers share theirs (their parent checked it).
                ("grpc.so_reuseport", int(worker)),
                ("grpc.max_receive_message_length", message_limit),
                ("grpc.max_send_message_length", message_limit),
            ],
        )
        events = EventLog(self.storage, now_us)
        self.feed = EventFeed(self.storage, events.sequence)
        self.pruner = EventPruner(events, settings.event_retention)
        watch = WatchServicer(
            events, self.feed, checkpoint=settings.watch_checkpoint, max_streams=settings.stream_limit
        )
        add_services(self.server, self.graph, watch)
        self.health = health.HealthServicer(experimental_non_blocking=True)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        reflection.enable_server_reflection(
            (*SERVICE_NAMES, health.SERVICE_NAME, reflection.SERVICE_NAME), self.server
        )
        self.monitor = HealthMonitor(self.storage, self.health, settings.health_interval)
        try:
            self.port = self.server.add_insecure_port(settings.listen)
        except RuntimeError as exc:
            raise PortInUse(f"cannot listen on {settings.listen}: {exc}") from None
        if not self.port:
            raise PortInUse(f"cannot listen on {settings.listen}: address in use or not available")

    def start(self) -> None:
        self.monitor.start()
        self.pruner.start()
        self.feed.start()
        if self.settings.metrics_listen and not self.worker:
            port = serve_metrics(self.settings.metrics_listen)
            log.info("metrics on %s", self.settings.metrics_listen.rpartition(":")[0] + f":{port}")
        self.server.start()
        log.info("socialgraph serving on %s (database %s)", self.settings.listen, self.storage.dialect)

    def stop(self, grace: float | None = None) -> None:
        """Ends Watch streams (UNAVAILABLE, resumable), stops accepting, lets
        in-flight RPCs finish within ``grace``, closes storage."""
        self.monitor.stop()
        self.pruner.stop()
        self.feed.close()
        self.server.stop(self.settings.grace_period if grace is None else grace).wait()
        self.storage.close()


def serve(settings: Settings, *, worker: bool = False) -> None:
    """Runs until SIGTERM or SIGINT, then drains in-flight RPCs."""
    app = App(settings, worker=worker)
    stopping = until_signalled(settings.grace_period)
    app.start()
    stopping.wait()
    app.stop()
    log.info("stopped")


def until_signalled(grace_period: float) -> threading.Event:
    """An event set by the first SIGTERM or SIGINT."""
    stopping = threading.Event()

    def on_signal(signum, _frame):
        log.info("received %s; draining for up to %.0f s", signal.Signals(signum).name, grace_period)
        stopping.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    return stopping
