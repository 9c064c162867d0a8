"""Processes for the tests and the bench: ``socialgraph serve`` (and the
other ``socialgraph`` commands) and a private ``redis-server``.

One place starts a server on a free loopback port with the flags, the
environment and the ``--workers`` count asked for, drains its output on a
thread (a child writing into a full pipe would block), waits until health
says SERVING (and every worker and the metrics endpoint are up), scrapes and
diffs its Prometheus metrics, meters CPU by process group from ``/proc``,
reads RSS, and stops it: SIGTERM, then SIGKILL after a bound.
"""

from __future__ import annotations

import contextlib
import os
import re
import resource
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any, TypeVar

import grpc
from grpc_health.v1 import health_pb2

from server.cli import health_stub as health_stub  # re-exported: the one typed Health client

HOST = "127.0.0.1"
SERVING = health_pb2.HealthCheckResponse.SERVING
START_TIMEOUT = 60.0  # seconds until SERVING (a loaded 2-core machine takes 20 s and more)
STOP_TIMEOUT = 15.0  # seconds from SIGTERM to SIGKILL

Key = TypeVar("Key")


class ProcessFailed(AssertionError):
    """A process did not start, did not become ready or did not finish in time."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def socialgraph_command() -> list[str]:
    """The ``socialgraph`` console script of this environment."""
    script = Path(sys.executable).parent / "socialgraph"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "server.cli"]


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without any SOCIALGRAPH_* setting, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOCIALGRAPH_")}
    env.update(extra)
    return env


def run_socialgraph(
    *args: str, cwd: str | Path | None = None, env: Mapping[str, str] | None = None, timeout: float = 60.0
) -> subprocess.CompletedProcess[str]:
    """Runs ``socialgraph ARGS`` to completion, its output captured; kills it
    and raises ProcessFailed when it takes longer than ``timeout``."""
    proc = subprocess.Popen(
        [*socialgraph_command(), *args],
        cwd=cwd,
        env=None if env is None else dict(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise ProcessFailed(f"socialgraph {' '.join(args)} did not finish in {timeout} s\n{out}\n{err}") from None
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def health_status(address: str, service: str = "", timeout: float = 2.0) -> int | grpc.StatusCode:
    """The server's health status, or the error code when it did not answer."""
    with grpc.insecure_channel(address) as channel:
        try:
            return health_stub(channel).Check(health_pb2.HealthCheckRequest(service=service), timeout=timeout).status
        except grpc.RpcError as error:
            code: grpc.StatusCode = error.code()
            return code


# ------------------------------------------------------------------ processes


_P = TypeVar("_P", bound="Process")


class Process:
    """A child process whose stdout and stderr are read line by line on a
    thread into ``lines`` (and ``log``, when given), so it never blocks on a
    full pipe. ``new_session`` puts it in a process group of its own, which
    ``stop`` kills as a whole at the end (workers, trackers)."""

    def __init__(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        cwd: str | Path | None = None,
        log: Path | None = None,
        new_session: bool = False,
    ) -> None:
        self.argv = list(argv)
        self.lines: list[str] = []
        self.new_session = new_session
        self._log: IO[str] | None = open(log, "w") if log is not None else None  # noqa: SIM115 (closed by _reap)
        self.popen = subprocess.Popen(
            self.argv,
            env=None if env is None else dict(env),
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            start_new_session=new_session,
        )
        self._reader = threading.Thread(target=self._drain, name=f"output-{self.popen.pid}", daemon=True)
        self._reader.start()

    def _drain(self) -> None:
        assert self.popen.stdout is not None
        for line in self.popen.stdout:
            self.lines.append(line.rstrip("\n"))
            if self._log is not None:
                self._log.write(line)
                self._log.flush()

    def _reap(self) -> None:
        """After exit: the rest of the output (bounded: a grandchild may hold the pipe)."""
        self._reader.join(timeout=5)
        if self._log is not None and not self._reader.is_alive():
            self._log.close()
            self._log = None

    @property
    def pid(self) -> int:
        return self.popen.pid

    def output(self, last: int | None = None) -> str:
        """What the process wrote (stdout and stderr), the ``last`` lines only when given."""
        lines = list(self.lines)
        if last is not None:
            lines = lines[-last:]
        return "".join(line + "\n" for line in lines)

    def poll(self) -> int | None:
        return self.popen.poll()

    def wait(self, timeout: float | None = None) -> int:
        """The exit code; subprocess.TimeoutExpired when still running after ``timeout``."""
        code = self.popen.wait(timeout=timeout)
        self._reap()
        return code

    def wait_for_exit(self, timeout: float) -> int | None:
        """The exit code, or None when still running after ``timeout``."""
        try:
            return self.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def send_signal(self, signum: int) -> None:
        self.popen.send_signal(signum)

    def terminate(self) -> None:
        self.popen.terminate()

    def kill(self) -> None:
        if self.popen.poll() is None:
            self.popen.kill()

    def stop(self, timeout: float = STOP_TIMEOUT) -> int:
        """SIGTERM, then SIGKILL when still running after ``timeout``; the exit code."""
        if self.popen.poll() is None:
            self.popen.terminate()
        code = self.wait_for_exit(timeout)
        if code is None:
            self.popen.kill()
            code = self.wait(timeout=10)
        if self.new_session:  # anything left in the group we started
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.popen.pid, signal.SIGKILL)
        return code

    def __enter__(self: _P) -> _P:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class ServerProcess(Process):
    """``socialgraph serve FLAGS`` on ``address`` (a free loopback port when
    not given), with ``--workers`` when ``workers`` is given and
    ``--metrics-listen`` on a free port when ``metrics`` is set. It starts at
    once; ``wait_serving`` waits until it is ready."""

    def __init__(
        self,
        *flags: str,
        address: str | None = None,
        workers: int | None = None,
        metrics: bool = False,
        env: Mapping[str, str] | None = None,
        cwd: str | Path | None = None,
        log: Path | None = None,
        new_session: bool = False,
    ) -> None:
        self.address = address or f"{HOST}:{free_port()}"
        self.port = int(self.address.rsplit(":", 1)[1])
        self.workers = workers or 1
        self.metrics: Metrics | None = None
        argv = [*socialgraph_command(), "serve", "--listen", self.address]
        if metrics:
            metrics_port = free_port()
            argv += ["--metrics-listen", f"{HOST}:{metrics_port}"]
            self.metrics = Metrics(metrics_port)
        if workers is not None:
            argv += ["--workers", str(workers)]
        super().__init__([*argv, *flags], env=env, cwd=cwd, log=log, new_session=new_session)

    def wait_serving(self, timeout: float = START_TIMEOUT) -> None:
        """Until health says SERVING, every worker runs and the metrics
        endpoint answers; ProcessFailed (with the output) when the process
        exits first or ``timeout`` passes."""
        deadline = time.monotonic() + timeout
        last = "no answer"

        def check() -> None:
            if self.poll() is not None:
                raise ProcessFailed(f"server exited with {self.poll()} while starting:\n{self.output()}")
            if time.monotonic() > deadline:
                raise ProcessFailed(
                    f"server on {self.address} not SERVING within {timeout} s ({last}):\n{self.output()}"
                )
            time.sleep(0.1)

        while True:
            # A new channel each time: a refused one waits out a growing reconnect backoff.
            status = health_status(self.address, timeout=3)
            if status == SERVING:
                break
            if isinstance(status, grpc.StatusCode):
                last = str(status)
            else:
                last = health_pb2.HealthCheckResponse.ServingStatus.Name(status)
            check()
        while self.workers > 1 and len(self.worker_pids()) < self.workers:
            last = f"{len(self.worker_pids())} of {self.workers} workers"
            check()
        while self.metrics is not None:
            try:
                self.metrics.text()
                break
            except OSError as error:
                last = f"metrics: {error}"
                check()

    def worker_pids(self) -> list[int]:
        """The ``--workers`` processes (spawned children)."""
        return [pid for pid in children(self.pid) if b"spawn_main" in _read(f"/proc/{pid}/cmdline", b"")]

    def serving_pids(self) -> list[int]:
        """The processes that answer RPCs: the server itself, or its workers."""
        return [self.pid] if self.workers == 1 else self.worker_pids()

    def rss_mb(self) -> dict[str, float]:
        """Resident memory in MB by pid: the server and its workers."""
        pids = ([self.pid] if self.workers > 1 else []) + self.serving_pids()
        out = {}
        for pid in pids:
            with contextlib.suppress(OSError, ProcessFailed):
                out[str(pid)] = round(rss_bytes(pid) / 1024 / 1024, 1)
        return out

    def cpu_meter(self) -> CpuMeter:
        """CPU from now on, with this server and every process under it as ``server``."""
        return CpuMeter({self.pid, *descendants(self.pid)})


def start_server(*flags: str, timeout: float = START_TIMEOUT, **options: Any) -> ServerProcess:
    """A ServerProcess (``options`` as its constructor takes them), SERVING;
    killed again when it does not become ready."""
    server = ServerProcess(*flags, **options)
    try:
        server.wait_serving(timeout)
    except BaseException:
        server.kill()
        server.wait_for_exit(10)
        raise
    return server


@contextlib.contextmanager
def running_server(
    *flags: str, env: Mapping[str, str] | None = None, timeout: float = START_TIMEOUT, **options: Any
) -> Iterator[tuple[str, ServerProcess]]:
    """``socialgraph serve FLAGS`` on a free loopback port, SERVING, with this
    process's environment plus ``env``, until the block ends (then stopped:
    SIGTERM, SIGKILL after 15 s); yields (address, server)."""
    server = start_server(*flags, env={**os.environ, **(env or {})}, timeout=timeout, **options)
    try:
        yield server.address, server
    finally:
        server.stop()


# ------------------------------------------------------------------ /proc


def _read(path: str, default: bytes) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return default


def _stat(pid: int | str) -> tuple[str, list[str]] | None:
    """(command name, the fields after it) of /proc/PID/stat."""
    stat = _read(f"/proc/{pid}/stat", b"").decode(errors="replace")
    if ")" not in stat:
        return None
    return stat[stat.index("(") + 1 : stat.rindex(")")], stat.rsplit(")", 1)[1].split()


def children(pid: int) -> list[int]:
    """The processes whose parent is ``pid``."""
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            stat = _stat(entry)
            if stat is not None and int(stat[1][1]) == pid:
                out.append(int(entry))
    return sorted(out)


def descendants(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        below = children(todo.pop())
        found += below
        todo += below
    return found


def rss_bytes(pid: int) -> int:
    """VmRSS of the process."""
    for line in _read(f"/proc/{pid}/status", b"").decode().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise ProcessFailed(f"no VmRSS for process {pid}")


_TICK = os.sysconf("SC_CLK_TCK")
# Process groups by command name; the server's own pids are group "server".
CPU_GROUPS = (
    ("postgres", ("postgres",)),
    ("redis", ("redis-server",)),
    ("generator", ("h2load", "node", "ghz")),
    ("kernel", ("kworker", "ksoftirqd")),
)


class CpuMeter:
    """CPU time spent, from construction to ``per_request``, by the server's
    processes (and, as ``server_sys``, the part of it in the kernel:
    system calls), PostgreSQL, Redis, the load generators (this process's
    reaped children, and any still running) and the kernel's workers: where
    a scenario's cost goes on a shared machine."""

    def __init__(self, server_pids: Iterable[int]) -> None:
        self.server_pids = set(server_pids)
        self.start = self._sample()

    def _sample(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            stat = _stat(entry)
            if stat is None:
                continue
            name, fields = stat
            group = "server" if int(entry) in self.server_pids else next(
                (g for g, prefixes in CPU_GROUPS if name.startswith(prefixes)), "other"
            )
            out[group] = out.get(group, 0.0) + (int(fields[11]) + int(fields[12])) / _TICK
            if group == "server":  # the part spent in the kernel for it (system calls)
                out["server_sys"] = out.get("server_sys", 0.0) + int(fields[12]) / _TICK
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        out["generator"] = out.get("generator", 0.0) + usage.ru_utime + usage.ru_stime
        return out

    def per_request(self, requests: int) -> dict[str, float]:
        """Microseconds of CPU per request, by group."""
        end = self._sample()
        return {
            g: round((end.get(g, 0.0) - self.start.get(g, 0.0)) / max(requests, 1) * 1e6)
            for g in ("server", "server_sys", "postgres", "redis", "generator", "kernel", "other")
        }


# ------------------------------------------------------------------ metrics

_SAMPLE = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})? ([0-9.eE+-]+|NaN|[+-]Inf)")
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')
RPCS = "socialgraph_rpcs_total"


class Metrics:
    """The server's Prometheus endpoint on ``port``."""

    def __init__(self, port: int, host: str = HOST) -> None:
        self.url = f"http://{host}:{port}/metrics"

    def text(self) -> str:
        with urllib.request.urlopen(self.url, timeout=10) as response:
            body: bytes = response.read()
        return body.decode()

    def samples(self) -> dict[str, float]:
        """Every sample by its name and labels as exposed, e.g.
        ``socialgraph_rpcs_total{code="OK",method="/x.Y/Z"}``."""
        out = {}
        for line in self.text().splitlines():
            match = _SAMPLE.fullmatch(line)
            if match:
                out[match[1] + (match[2] or "")] = float(match[3])
        return out

    def value(self, name: str, **labels: str) -> float:
        """The sum of ``name``'s samples that carry ``labels`` (0 when none)."""
        total = 0.0
        for key, value in self.samples().items():
            sample, have = parse_sample(key)
            if sample == name and labels.items() <= have.items():
                total += value
        return total

    def rpcs(self) -> dict[tuple[str, str], float]:
        """socialgraph_rpcs_total by (method, code)."""
        out: dict[tuple[str, str], float] = {}
        for key, value in self.samples().items():
            name, labels = parse_sample(key)
            if name == RPCS:
                at = (labels["method"], labels["code"])
                out[at] = out.get(at, 0.0) + value
        return out

    def quiesce(self, timeout: float = 10.0) -> dict[tuple[str, str], float]:
        """``rpcs()`` once no RPC has completed for 0.3 s (a probe's stragglers)."""
        before = self.rpcs()
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            time.sleep(0.3)
            now = self.rpcs()
            if now == before:
                return now
            before = now
        return before


def parse_sample(key: str) -> tuple[str, dict[str, str]]:
    """``name{a="1",b="2"}`` -> (name, labels)."""
    name, _, labels = key.partition("{")
    return name, dict(_LABEL.findall(labels))


def delta(before: Mapping[Key, float], after: Mapping[Key, float]) -> dict[Key, float]:
    """``after - before`` for every key of either."""
    return {k: after.get(k, 0.0) - before.get(k, 0.0) for k in {**before, **after}}


RpcCounts = Mapping[tuple[str, str], float]


def rpcs_by_method(before: RpcCounts, after: RpcCounts) -> dict[str, dict[str, int]]:
    """The RPCs completed between two ``Metrics.rpcs()``: method -> code -> count."""
    out: dict[str, dict[str, int]] = {}
    for (method, code), value in delta(before, after).items():
        if round(value):
            out.setdefault(method, {})[code] = int(round(value))
    return out


# ------------------------------------------------------------------ redis


class RedisServer:
    """A private ``redis-server`` on a free loopback port that can be stopped
    and started again (same port, empty data)."""

    def __init__(self, directory: str | Path, *extra: str) -> None:
        self.port = free_port()
        self.directory = str(directory)
        self.extra = extra
        self.process: Process | None = None

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.port}/0"

    def start(self) -> RedisServer:
        import redis

        self.process = Process(
            ["redis-server", "--port", str(self.port), "--bind", HOST, "--save", "",
             "--appendonly", "no", "--dir", self.directory, *self.extra],
        )
        client = redis.Redis(port=self.port, socket_connect_timeout=0.5)
        deadline = time.monotonic() + 10
        while True:
            try:
                if client.ping():
                    return self
            except redis.RedisError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    self.stop()
                    raise ProcessFailed(f"redis-server on port {self.port} did not start") from None
                time.sleep(0.05)

    def stop(self) -> None:
        """SIGKILL: nothing is saved."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self.process = None

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
