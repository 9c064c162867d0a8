"""Wiring: settings in, a running gRPC server out."""

from __future__ import annotations

import logging
import secrets
import signal
import threading
from collections.abc import Iterable, Iterator
from concurrent import futures
from types import FrameType

import grpc
from google.protobuf.descriptor import ServiceDescriptor
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection, reflection_pb2, reflection_pb2_grpc
from opentelemetry.sdk.trace import TracerProvider

from cache import build, redis_client
from ratelimit.failover import FailoverLimiter
from ratelimit.redis import RedisLimiter
from socialgraph.v1 import admin_pb2, social_graph_pb2, watch_pb2
from storage import SqlStorage, Storage, StorageUnavailable, open_storage
from storage.feed import EventFeed
from storage.limiter import SqlLimiter
from storage.migrate import upgrade
from storage.tracing import TracedStorage

from .auth import Authenticator, AuthInterceptor
from .errors import status_for
from .fairness import FairExecutor, ShedInterceptor
from .handlers import add_service
from .logs import AccessLogInterceptor
from .metrics import MetricsInterceptor, serve_metrics
from .rules import EventLog, Graph, PageTokens, Policy, TooManyStreams
from .rules.graph import now_us
from .servicers import AdminServicer, SocialGraphServicer, WatchServicer
from .settings import Settings
from .tls import CertificateFiles
from .tracing import TracingInterceptor
from .tracing import tracer_provider as configured_tracer_provider

log = logging.getLogger(__name__)

GRAPH_SERVICE = social_graph_pb2.DESCRIPTOR.services_by_name["SocialGraphService"]
ADMIN_SERVICE = admin_pb2.DESCRIPTOR.services_by_name["AdminService"]
WATCH_SERVICE = watch_pb2.DESCRIPTOR.services_by_name["WatchService"]
SERVICE_NAMES = (GRAPH_SERVICE.full_name, ADMIN_SERVICE.full_name, WATCH_SERVICE.full_name)
_SERVICERS = {GRAPH_SERVICE.full_name: SocialGraphServicer, ADMIN_SERVICE.full_name: AdminServicer}


REFLECTION_V1 = "grpc.reflection.v1.ServerReflection"


class _ReflectionServicer(reflection.ReflectionServicer):
    """Also finds the file of a method symbol (``package.Service.Method``),
    which the reflection protocol allows and ghz asks for: protobuf's upb
    descriptor pool resolves services, messages and fields, not methods.
    Serves at most ``max_streams`` streams at once: each holds a worker
    thread for as long as its client keeps it open, so idle ones must not
    take every thread; more are refused RESOURCE_EXHAUSTED / TOO_MANY_STREAMS."""

    def __init__(self, service_names: Iterable[str], max_streams: int) -> None:
        super().__init__(service_names)
        self._max_streams = max_streams
        self._slots = threading.BoundedSemaphore(max_streams)

    # Served by grpc.server only, never by grpc.aio, so the context is a synchronous one.
    def ServerReflectionInfo(  # type: ignore[override]
        self, request_iterator: Iterable[reflection_pb2.ServerReflectionRequest], context: grpc.ServicerContext
    ) -> Iterator[reflection_pb2.ServerReflectionResponse]:
        if not self._slots.acquire(blocking=False):
            context.abort_with_status(status_for(TooManyStreams(self._max_streams)))
        try:
            yield from super().ServerReflectionInfo(request_iterator, context)
        finally:
            self._slots.release()

    # Both private to grpcio-reflection, so its stubs leave them out.
    def _file_containing_symbol(
        self, request: reflection_pb2.ServerReflectionRequest, fully_qualified_name: str
    ) -> reflection_pb2.ServerReflectionResponse:
        service, _, method = fully_qualified_name.rpartition(".")
        try:
            if method in self._pool.FindServiceByName(service).methods_by_name:  # type: ignore[attr-defined]
                fully_qualified_name = service
        except KeyError:
            pass
        return super()._file_containing_symbol(request, fully_qualified_name)  # type: ignore[misc, no-any-return]


def enable_reflection(server: grpc.Server, service_names: Iterable[str], max_streams: int) -> None:
    """Server reflection as grpc.reflection.v1alpha and as v1, which newer
    grpcurl and ghz ask for first. grpcio-reflection serves only v1alpha; v1
    is the same protocol (same messages, same field numbers) under a new
    package name, so one servicer answers both."""
    servicer = _ReflectionServicer(service_names, max_streams)
    reflection_pb2_grpc.add_ServerReflectionServicer_to_server(servicer, server)
    v1 = grpc.stream_stream_rpc_method_handler(
        servicer.ServerReflectionInfo,
        request_deserializer=reflection_pb2.ServerReflectionRequest.FromString,
        response_serializer=reflection_pb2.ServerReflectionResponse.SerializeToString,
    )
    v1_handler = grpc.method_handlers_generic_handler(REFLECTION_V1, {"ServerReflectionInfo": v1})
    server.add_generic_rpc_handlers((v1_handler,))


class PortInUse(RuntimeError):
    pass


class InvalidConfiguration(ValueError):
    """A credential or certificate file the settings name cannot be used."""


def load_security(settings: Settings) -> tuple[Authenticator | None, CertificateFiles | None]:
    """The authenticator (when auth is on) and the TLS files (when TLS is on)."""
    try:
        authenticator = Authenticator(settings) if settings.auth_enabled else None
        certificates = CertificateFiles.from_settings(settings)
    except ValueError as exc:
        raise InvalidConfiguration(str(exc)) from None
    return authenticator, certificates


def make_graph(settings: Settings, storage: Storage) -> Graph:
    """The rules over ``storage``, with the limiter and the counter and
    relationship readers the settings ask for: the Redis limiter with
    ``redis_url`` (falling back to the database while Redis is down), the
    database limiter without; the cache layers of the deployment's shape
    (``cache/build.py``)."""
    policy = Policy(
        connection_limit=settings.connection_limit,
        auto_follow=settings.auto_follow,
        avatar_schemes=("https", "http") if settings.allow_http_avatars else ("https",),
        page_bytes=settings.page_bytes,
        edge_batch=settings.edge_batch_size,
        batch_seconds=settings.job_batch_ms / 1000,
        inline_seconds=settings.job_inline_ms / 1000,
        job_lease_seconds=settings.job_lease_ms / 1000,
    )
    # The database limiter is exact across every process on the database.
    sql_limiter = SqlLimiter(storage, settings.windows)
    tokens = page_tokens(settings, storage)
    client = redis_client.connect(settings.redis_url, settings.redis_timeout) if settings.redis_url else None
    limiter = sql_limiter if client is None else FailoverLimiter(RedisLimiter(client, settings.windows), sql_limiter)
    readers = build(
        storage,
        client,
        workers=settings.workers,
        ttl_seconds=settings.counter_cache_ttl,
        max_staleness=settings.max_staleness,
    )
    return Graph(
        storage, limiter, policy, page_tokens=tokens, counters=readers.counters, relationships=readers.relationships
    )


def page_tokens(settings: Settings, storage: Storage) -> PageTokens:
    """The configured keys; without any, the key kept in the database (made
    by the first process that asks), so every process accepts every token."""
    if settings.page_token_keys:
        return PageTokens(settings.page_token_keys)
    stored = storage.read_write(lambda tx: tx.service_key("page_tokens", secrets.token_hex(32)))
    return PageTokens([stored.encode()])


MAX_METADATA_BYTES = 16 * 1024


def connection_options(settings: Settings) -> list[tuple[str, int]]:
    """grpc server options for message size, keepalive and connection age."""
    options = [
        ("grpc.max_receive_message_length", settings.max_message_bytes),
        ("grpc.max_send_message_length", settings.max_message_bytes),
        ("grpc.keepalive_time_ms", _ms(settings.keepalive_time)),
        ("grpc.keepalive_timeout_ms", _ms(settings.keepalive_timeout)),
        ("grpc.http2.min_recv_ping_interval_without_data_ms", _ms(settings.keepalive_min_ping_interval)),
        ("grpc.keepalive_permit_without_calls", int(settings.keepalive_permit_without_calls)),
        ("grpc.max_concurrent_streams", settings.max_concurrent_streams),
        # One limit for request metadata, not gRPC's default band between 8
        # and 16 KiB where a random share of calls is refused: every call under
        # it reaches the handlers (and the token check's own 8 KiB limit).
        ("grpc.max_metadata_size", MAX_METADATA_BYTES),
        ("grpc.absolute_max_metadata_size", MAX_METADATA_BYTES),
    ]
    if settings.max_connection_age > 0:
        options.append(("grpc.max_connection_age_ms", _ms(settings.max_connection_age)))
        options.append(("grpc.max_connection_age_grace_ms", _ms(settings.max_connection_age_grace)))
    return options


def _ms(seconds: float) -> int:
    return int(seconds * 1000)


def reflection_streams(settings: Settings) -> int:
    """Reflection streams one listener serves at once: a quarter of the
    worker threads, so idle ones never hold the rest."""
    return max(1, settings.threads // 4)


def add_services(
    server: grpc.Server,
    graph: Graph,
    watch: WatchServicer | None = None,
    services: Iterable[ServiceDescriptor] = (GRAPH_SERVICE, ADMIN_SERVICE, WATCH_SERVICE),
) -> None:
    """``services`` over ``graph``; without ``watch``, a Watch service with
    the default settings."""
    for service in services:
        if service is not WATCH_SERVICE:
            add_service(server, _SERVICERS[service.full_name](graph), service)
            continue
        if watch is None:
            events = EventLog(graph.storage, now_us)
            # graph.storage is a SqlStorage, or a TracedStorage over one.
            watch = WatchServicer(events, EventFeed(graph.storage, events.sequence))  # type: ignore[arg-type]
        add_service(server, watch, service)


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
        self._probe: futures.Future[None] | None = None
        self._serving: bool | None = None

    def start(self) -> None:
        self.check()
        self._thread.start()

    def check(self) -> bool:
        if self._probe is None or self._probe.done():
            self._probe = self._prober.submit(self._storage.ping)
        reason: StorageUnavailable | str | None
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

    def _set(self, status: int) -> None:
        for name in ("", *SERVICE_NAMES):
            self._servicer.set(name, status)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self.check()


class App:
    """A configured server: storage, rules, services, health and reflection."""

    def __init__(
        self, settings: Settings, *, worker: bool = False, tracer_provider: TracerProvider | None = None
    ) -> None:
        """``worker``: one of several processes on one port (see server/workers.py),
        which share the port and leave migrations and metrics to their parent.
        ``tracer_provider``: an OpenTelemetry provider to use instead of the
        one ``trace_exporter`` configures (the caller shuts it down)."""
        self.settings = settings
        self.worker = worker
        self.auth, self.certificates = load_security(settings)
        self._own_tracer_provider = None if tracer_provider else configured_tracer_provider(settings)
        self.tracer_provider = tracer_provider or self._own_tracer_provider
        self.tracer = self.tracer_provider.get_tracer("socialgraph") if self.tracer_provider else None
        self.storage = open_storage(
            settings.database_url, pool_size=settings.threads, deadline=settings.database_timeout
        )
        if settings.migrate_on_start and not worker:
            upgrade(self.storage)
        traced = TracedStorage(self.storage, self.tracer) if self.tracer else self.storage
        self.graph = make_graph(settings, traced)
        self.health = health.HealthServicer(experimental_non_blocking=True)
        # One executor for both listeners (the database pool is sized to its
        # threads): a queue per client connection, served round robin.
        self.executor = FairExecutor(settings.threads, settings.max_concurrent_rpcs)
        events = EventLog(self.storage, now_us)
        self.feed = EventFeed(self.storage, events.sequence)
        self.pruner = EventPruner(events, settings.event_retention)
        self.watch = WatchServicer(
            events, self.feed, checkpoint=settings.watch_checkpoint, max_streams=settings.stream_limit
        )
        self.admin_server: grpc.Server | None = None
        if settings.admin_listen:
            self.server, self.port = self._server((GRAPH_SERVICE, WATCH_SERVICE), settings.listen)
            self.admin_server, self.admin_port = self._server((ADMIN_SERVICE,), settings.admin_listen)
        else:
            self.server, self.port = self._server((GRAPH_SERVICE, ADMIN_SERVICE, WATCH_SERVICE), settings.listen)
        self.monitor = HealthMonitor(self.storage, self.health, settings.health_interval)

    def interceptors(self) -> list[grpc.ServerInterceptor]:
        """Metrics, the access log when asked for, then the credential check
        when auth is on: a server without them pays nothing for them."""
        interceptors: list[grpc.ServerInterceptor] = [MetricsInterceptor(), ShedInterceptor()]
        if self.tracer is not None:
            interceptors.append(TracingInterceptor(self.tracer))
        if self.settings.access_log:
            interceptors.append(AccessLogInterceptor())
        if self.auth is not None:
            interceptors.append(AuthInterceptor(self.auth, open_reflection=self.settings.auth_open_reflection))
        return interceptors

    def _server(self, services: tuple[ServiceDescriptor, ...], address: str) -> tuple[grpc.Server, int]:
        """A gRPC server for ``services`` plus health and reflection, bound to ``address``; and its port."""
        settings = self.settings
        server = grpc.server(
            self.executor,  # type: ignore[arg-type]  # grpc only calls submit(); its stubs ask for a ThreadPoolExecutor
            interceptors=self.interceptors(),
            options=[
                # One process fails on a port that is already taken instead of
                # sharing it; workers share theirs (their parent checked it).
                ("grpc.so_reuseport", int(self.worker)),
                *connection_options(settings),
            ],
            # The executor sheds load from max_concurrent_rpcs on (OVERLOADED);
            # shed calls count here until answered, so grpc's own refusal of
            # every new call starts only at four times that.
            maximum_concurrent_rpcs=4 * settings.max_concurrent_rpcs,
        )
        add_services(server, self.graph, self.watch, services)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        names = (*(service.full_name for service in services), health.SERVICE_NAME, reflection.SERVICE_NAME)
        enable_reflection(server, names, reflection_streams(settings))
        try:
            if self.certificates is not None:
                port = server.add_secure_port(address, self.certificates.credentials())
            else:
                port = server.add_insecure_port(address)
        except RuntimeError as exc:
            raise PortInUse(f"cannot listen on {address}: {exc}") from None
        if not port:
            raise PortInUse(f"cannot listen on {address}: address in use or not available")
        return server, port

    def start(self) -> None:
        self.monitor.start()
        self.pruner.start()
        self.graph.jobs.start()
        self.feed.start()
        if self.settings.metrics_listen and not self.worker:
            port = serve_metrics(self.settings.metrics_listen)
            log.info("metrics on %s", self.settings.metrics_listen.rpartition(":")[0] + f":{port}")
        if self.auth is not None:
            self.auth.start()
        self.server.start()
        security = "TLS" if self.certificates else "plaintext"
        if self.certificates and self.settings.tls_client_ca:
            security = "mutual TLS"
        if self.auth is not None:
            security += ", credentials required"
        log.info("socialgraph serving on %s (database %s; %s)", self.settings.listen, self.storage.dialect, security)
        if self.admin_server is not None:
            self.admin_server.start()
            log.info("AdminService serving on %s", self.settings.admin_listen)

    def reload_credentials(self) -> None:
        """Reads the token and JWT key files again (TLS files reload by themselves)."""
        if self.auth is not None:
            self.auth.reload()

    def stop(self, grace: float | None = None) -> None:
        """Ends Watch streams (UNAVAILABLE, resumable), stops accepting, lets
        in-flight RPCs finish within ``grace``, closes storage."""
        self.monitor.stop()
        self.pruner.stop()
        # Ask the big-account runner to stop after its batch, but wait for it
        # only once the listeners are closed: a batch waiting on a lock must
        # not keep the server accepting RPCs after SIGTERM.
        self.graph.jobs.stop(timeout=0)
        self.feed.close()
        grace = self.settings.grace_period if grace is None else grace
        stopped = [server.stop(grace) for server in (self.server, self.admin_server) if server is not None]
        for event in stopped:
            event.wait()
        self.graph.jobs.stop()
        if self.auth is not None:
            self.auth.stop()
        self.executor.shutdown(wait=False)
        self.storage.close()
        if self._own_tracer_provider:
            self._own_tracer_provider.shutdown()


def serve(settings: Settings, *, worker: bool = False) -> None:
    """Runs until SIGTERM or SIGINT, then drains in-flight RPCs."""
    app = App(settings, worker=worker)
    stopping = until_signalled(settings.grace_period)
    signal.signal(signal.SIGHUP, lambda _signum, _frame: threading.Thread(target=app.reload_credentials).start())
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGHUP})
    app.start()
    stopping.wait()
    app.stop()
    log.info("stopped")


def until_signalled(grace_period: float) -> threading.Event:
    """An event set by the first SIGTERM or SIGINT."""
    stopping = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("received %s; draining for up to %.0f s", signal.Signals(signum).name, grace_period)
        stopping.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    return stopping
