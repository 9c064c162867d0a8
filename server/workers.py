"""``serve --workers N``: N server processes on one port (SO_REUSEPORT), so a
Python server uses every core.

The parent checks that the port is free, applies migrations once, serves the
metrics of all workers together (prometheus_client's multiprocess mode), and
supervises: SIGTERM is passed on and each worker drains; a worker that dies
stops the whole server with a non-zero exit, for the supervisor above to
restart."""

from __future__ import annotations

import logging
import multiprocessing
import os
import shutil
import signal
import socket
import tempfile
from types import FrameType

from storage import open_storage
from storage.migrate import upgrade

from .app import PortInUse, load_security, serve, until_signalled
from .logs import configure as configure_logs
from .settings import Settings

log = logging.getLogger(__name__)


def check_port_free(listen: str) -> None:
    """Binds without SO_REUSEPORT, which fails while anyone holds the port,
    other SocialGraph workers included."""
    host, _, port = listen.rpartition(":")
    host = host.strip("[]") or "0.0.0.0"
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((host, int(port)))
        except OSError as exc:
            raise PortInUse(f"cannot listen on {listen}: {exc.strerror}") from None


def run(settings: Settings) -> int:
    check_port_free(settings.listen)
    if settings.admin_listen:
        check_port_free(settings.admin_listen)
    load_security(settings)  # unusable credential or certificate files fail here, once
    if settings.migrate_on_start:
        storage = open_storage(settings.database_url, pool_size=1)
        upgrade(storage)
        storage.close()
    metrics_dir = tempfile.mkdtemp(prefix="socialgraph-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    try:
        return _supervise(settings, metrics_dir)
    finally:
        shutil.rmtree(metrics_dir, ignore_errors=True)


def _supervise(settings: Settings, metrics_dir: str) -> int:
    stopping = until_signalled(settings.grace_period)
    context = multiprocessing.get_context("spawn")
    workers = [
        context.Process(target=_worker, args=(settings, index), name=f"worker-{index}", daemon=False)
        for index in range(settings.workers)
    ]

    def forward_reload(_signum: int, _frame: FrameType | None) -> None:
        for worker in workers:
            if worker.pid is not None and worker.is_alive():
                os.kill(worker.pid, signal.SIGHUP)

    signal.signal(signal.SIGHUP, forward_reload)
    # Workers start with SIGHUP blocked and unblock it once they handle it,
    # so a reload while they start cannot kill them.
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGHUP})
    for worker in workers:
        worker.start()
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGHUP})
    if settings.metrics_listen:
        _serve_metrics(settings.metrics_listen, metrics_dir)
    log.info("socialgraph serving on %s with %d workers", settings.listen, settings.workers)
    failed = False
    while not stopping.wait(0.5):
        dead = [w for w in workers if not w.is_alive()]
        if dead:
            log.error("%s exited with code %s; stopping", dead[0].name, dead[0].exitcode)
            failed = True
            break
    for worker in workers:
        if worker.is_alive() and worker.pid is not None:
            os.kill(worker.pid, signal.SIGTERM)
    for worker in workers:
        worker.join(settings.grace_period + 5)
        if worker.is_alive():
            worker.kill()
            worker.join()
    log.info("stopped")
    return 1 if failed else 0


def _serve_metrics(address: str, metrics_dir: str) -> None:
    from prometheus_client import CollectorRegistry, start_http_server
    from prometheus_client.multiprocess import MultiProcessCollector

    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=metrics_dir)
    host, _, port = address.rpartition(":")
    start_http_server(int(port), addr=host or "127.0.0.1", registry=registry)


def _worker(settings: Settings, index: int) -> None:
    configure_logs(settings.log_level, settings.log_format, worker=index)
    serve(settings, worker=True)
    logging.shutdown()
    os._exit(0)
