"""One settings object, read from ``SOCIALGRAPH_*`` environment variables and
overridden by command-line flags of the same name (``--database-url`` is
``SOCIALGRAPH_DATABASE_URL``)."""

from __future__ import annotations

import argparse
import dataclasses
import os
from dataclasses import dataclass, field
from typing import Mapping

from ratelimit import Window, parse_windows

ENV_PREFIX = "SOCIALGRAPH_"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
REDIS_SCHEMES = ("redis://", "rediss://", "redis+cluster://", "rediss+cluster://", "unix://")


def _setting(default, help: str, *, commands: tuple[str, ...] = ("serve",)):
    return field(default=default, metadata={"help": help, "commands": commands})


_ALL = ("serve", "migrate", "recount", "health", "events")


@dataclass(frozen=True)
class Settings:
    listen: str = _setting(
        "127.0.0.1:50051", "address the gRPC server listens on (host:port)", commands=("serve", "health", "events")
    )
    database_url: str = _setting(
        "sqlite:///./socialgraph.db",
        "SQLAlchemy URL: sqlite:///PATH or postgresql+psycopg://USER@HOST:PORT/DB",
        commands=("serve", "migrate", "recount"),
    )
    database_timeout: float = _setting(
        5.0, "seconds a PostgreSQL transaction may wait on the database before it fails UNAVAILABLE"
    )
    redis_url: str = _setting(
        "",
        "redis://, rediss:// or redis+cluster:// URL; empty runs the limiter and cache in-process",
        commands=("serve", "recount"),
    )
    redis_timeout: float = _setting(
        0.025, "seconds a Redis call may take before the limiter and cache fall back", commands=("serve", "recount")
    )
    counter_cache_ttl: int = _setting(3600, "seconds a cached counter lives without being refreshed", commands=("serve", "recount"))
    metrics_listen: str = _setting("", "address of the Prometheus /metrics endpoint (host:port); empty turns it off")
    log_level: str = _setting("INFO", "DEBUG, INFO, WARNING or ERROR", commands=_ALL)
    connection_limit: int = _setting(2000, "most connections a user may have (C6)")
    auto_follow: bool = _setting(True, "sending and accepting a request follow the other user (C4)")
    rate_limits: str = _setting(
        "20/1h,100/24h", "connection requests per requester per sliding window, comma-separated (C7)"
    )
    workers: int = _setting(1, "server processes sharing the port (SO_REUSEPORT), to use every core")
    threads: int = _setting(32, "gRPC worker threads per process; also the database connection pool size")
    grace_period: float = _setting(10.0, "seconds in-flight RPCs get to finish on SIGTERM")
    max_message_bytes: int = _setting(4 * 1024 * 1024, "largest request or response message")
    health_interval: float = _setting(2.0, "seconds between database health probes")
    migrate_on_start: bool = _setting(True, "apply schema migrations when the server starts")
    watch_checkpoint: float = _setting(5.0, "seconds an idle Watch stream waits at most before sending a checkpoint")
    watch_streams: int = _setting(16, "most Watch streams per process (each holds a gRPC thread; at most half of --threads)")
    event_retention: float = _setting(
        7 * 86_400.0, "seconds events are kept for Watch; older ones are pruned in the background"
    )

    @property
    def windows(self) -> tuple[Window, ...]:
        return parse_windows(self.rate_limits)

    @property
    def stream_limit(self) -> int:
        """Watch streams per process: at most half the threads, so unary calls always have threads."""
        return max(1, min(self.watch_streams, self.threads // 2))

    def validate(self) -> "Settings":
        """Raises ValueError naming the setting when a value is unusable."""
        try:
            self.windows  # noqa: B018 - parses
        except ValueError as exc:
            raise ValueError(f"rate_limits ({ENV_PREFIX}RATE_LIMITS / --rate-limits): {exc}") from None
        if self.log_level.upper() not in LOG_LEVELS:
            raise ValueError(f"log_level must be one of {', '.join(LOG_LEVELS)}, got {self.log_level!r}")
        scheme = self.database_url.partition(":")[0].partition("+")[0]
        if scheme not in ("sqlite", "postgresql"):
            raise ValueError(f"database_url must start with sqlite:// or postgresql://, got {self.database_url!r}")
        if self.redis_url and not self.redis_url.startswith(REDIS_SCHEMES):
            raise ValueError(f"redis_url must start with one of {', '.join(REDIS_SCHEMES)}, got {self.redis_url!r}")
        if self.metrics_listen and not self.metrics_listen.rpartition(":")[2].isdigit():
            raise ValueError(f"metrics_listen must be host:port, got {self.metrics_listen!r}")
        if self.redis_timeout <= 0 or self.counter_cache_ttl < 1 or self.database_timeout <= 0:
            raise ValueError("redis_timeout, counter_cache_ttl and database_timeout must be positive")
        if self.connection_limit < 1:
            raise ValueError("connection_limit must be at least 1")
        if self.threads < 1 or self.workers < 1:
            raise ValueError("threads and workers must be at least 1")
        if self.watch_checkpoint <= 0 or self.event_retention <= 0:
            raise ValueError("watch_checkpoint and event_retention must be positive")
        if self.watch_streams < 1:
            raise ValueError("watch_streams must be at least 1")
        if not self.listen.rpartition(":")[2].isdigit():
            raise ValueError(f"listen must be host:port, got {self.listen!r}")
        return self


def fields_for(command: str) -> list[dataclasses.Field]:
    return [f for f in dataclasses.fields(Settings) if command in f.metadata["commands"]]


def env_name(f: dataclasses.Field) -> str:
    return ENV_PREFIX + f.name.upper()


def _parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def _parser_type(f: dataclasses.Field):
    return {bool: _parse_bool, int: int, float: float}.get(type(f.default), str)


def add_arguments(parser: argparse.ArgumentParser, command: str) -> None:
    for f in fields_for(command):
        parser.add_argument(
            "--" + f.name.replace("_", "-"),
            dest=f.name,
            type=_parser_type(f),
            default=None,
            metavar=env_name(f),
            help=f"{f.metadata['help']} (default: {f.default!r})",
        )


def load(args: argparse.Namespace | None = None, environ: Mapping[str, str] = os.environ) -> Settings:
    """Defaults, then the environment, then flags."""
    values = {}
    for f in dataclasses.fields(Settings):
        flag = getattr(args, f.name, None) if args is not None else None
        if flag is not None:
            values[f.name] = flag
        elif env_name(f) in environ:
            try:
                values[f.name] = _parser_type(f)(environ[env_name(f)])
            except (ValueError, argparse.ArgumentTypeError) as exc:
                raise ValueError(f"{env_name(f)}: {exc}") from None
    return Settings(**values).validate()
