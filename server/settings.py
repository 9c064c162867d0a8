"""One settings object, read from ``SOCIALGRAPH_*`` environment variables and
overridden by command-line flags of the same name (``--database-url`` is
``SOCIALGRAPH_DATABASE_URL``)."""

from __future__ import annotations

import argparse
import dataclasses
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from ratelimit import Window, parse_windows

ENV_PREFIX = "SOCIALGRAPH_"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
LOG_FORMATS = ("text", "json")
TRACE_EXPORTERS = ("none", "otlp", "console")
REDIS_SCHEMES = ("redis://", "rediss://", "redis+cluster://", "rediss+cluster://", "unix://")


T = TypeVar("T")


def _setting(default: T, help: str, *, commands: tuple[str, ...] = ("serve",)) -> T:
    return field(default=default, metadata={"help": help, "commands": commands})


_ALL = ("serve", "migrate", "recount", "health", "events")
# The commands that serve TLS or connect to the server over it.
_TLS_COMMANDS = ("serve", "health", "events")


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
    counter_cache_ttl: int = _setting(
        3600, "seconds a cached counter lives without being refreshed", commands=("serve", "recount")
    )
    max_staleness: float = _setting(
        1.0, "seconds a default read may lag behind acknowledged writes; cached entries older than this are read again"
    )
    metrics_listen: str = _setting("", "address of the Prometheus /metrics endpoint (host:port); empty turns it off")
    log_level: str = _setting("INFO", "DEBUG, INFO, WARNING or ERROR", commands=_ALL)
    log_format: str = _setting("text", "text, or json for one JSON object per line", commands=_ALL)
    access_log: bool = _setting(False, "log one line per RPC: method, code, reason, duration, caller, peer, request id")
    trace_exporter: str = _setting("none", "OpenTelemetry span exporter: none, otlp (OTLP/HTTP) or console")
    trace_endpoint: str = _setting("", "OTLP/HTTP traces URL; empty uses OTEL_EXPORTER_OTLP_* or http://localhost:4318/v1/traces")
    trace_sample_ratio: float = _setting(
        1.0, "share of new traces recorded; a caller's sampled traceparent is always followed"
    )
    connection_limit: int = _setting(2000, "most connections a user may have (C6)")
    auto_follow: bool = _setting(True, "sending and accepting a request follow the other user (C4)")
    edge_batch_size: int = _setting(
        250, "most edges one batch removes when deleting or promoting a user (batches are sized by time below it)"
    )
    job_batch_ms: float = _setting(
        15.0, "milliseconds one batch of a deletion or promotion aims at (it holds the other users' locks that long)"
    )
    job_inline_ms: float = _setting(
        200.0, "milliseconds DeleteUser and UpsertUser remove edges before leaving the rest to the background"
    )
    job_lease_ms: float = _setting(
        10_000.0, "milliseconds a deletion or promotion job stays with a process that stopped working on it (crash)"
    )
    allow_http_avatars: bool = _setting(False, "accept http:// avatar URLs as well as https://")
    rate_limits: str = _setting(
        "20/1h,100/24h", "connection requests per requester per sliding window, comma-separated (C7)"
    )
    workers: int = _setting(1, "server processes sharing the port (SO_REUSEPORT), to use every core")
    threads: int = _setting(32, "gRPC worker threads per process; also the database connection pool size")
    grace_period: float = _setting(10.0, "seconds in-flight RPCs get to finish on SIGTERM")
    max_message_bytes: int = _setting(4 * 1024 * 1024, "largest request or response message")
    page_max_bytes: int = _setting(
        512 * 1024, "most bytes of items in one page (at most half of max_message_bytes); a page stops early instead"
    )
    max_concurrent_streams: int = _setting(
        100, "most RPCs in flight on one client connection (HTTP/2 MAX_CONCURRENT_STREAMS)"
    )
    max_concurrent_rpcs: int = _setting(
        512,
        "RPCs in flight (running or queued) in one process from which callers over their share are refused "
        "RESOURCE_EXHAUSTED / OVERLOADED at once; grpc refuses every new call beyond four times this",
    )
    health_interval: float = _setting(2.0, "seconds between database health probes")
    migrate_on_start: bool = _setting(True, "apply schema migrations when the server starts")
    page_token_key: str = _setting(
        "",
        "keys that sign page tokens, comma-separated: the first signs, every one is accepted (rotation); "
        "empty: one random key, made once and kept in the database",
    )
    keepalive_time: float = _setting(30.0, "seconds of silence on a connection before the server pings the client")
    keepalive_timeout: float = _setting(10.0, "seconds the server waits for a ping's answer before closing")
    keepalive_min_ping_interval: float = _setting(
        10.0, "shortest interval between client pings the server tolerates (more often: GOAWAY too_many_pings)"
    )
    keepalive_permit_without_calls: bool = _setting(True, "accept client pings on connections with no call in flight")
    max_connection_age: float = _setting(
        300.0,
        "seconds (give or take a tenth) after which a connection is asked to move (GOAWAY), "
        "so clients rebalance; 0 never",
    )
    max_connection_age_grace: float = _setting(30.0, "seconds calls in flight get after that GOAWAY")
    admin_listen: str = _setting(
        "", "serve AdminService on this address (host:port) only, and not on --listen; empty serves both together"
    )
    tls_cert: str = _setting(
        "", "PEM certificate chain to serve TLS with (with --tls-key); reloaded when it changes", commands=_TLS_COMMANDS
    )
    tls_key: str = _setting("", "PEM private key of --tls-cert", commands=_TLS_COMMANDS)
    tls_client_ca: str = _setting(
        "", "PEM CA bundle: require client certificates (mutual TLS) and verify them against it", commands=_TLS_COMMANDS
    )
    tls_client_scopes: str = _setting(
        "",
        "scopes granted to mutual-TLS identities: IDENTITY=SCOPE SCOPE,... where IDENTITY is a SPIFFE URI or DNS SAN",
    )
    auth_tokens_file: str = _setting("", "TOML file of hashed static bearer tokens with names and scopes")
    auth_jwt_keys: str = _setting("", "PEM public key(s) or JWKS file that bearer JWTs are verified against")
    auth_jwt_issuer: str = _setting("", "required `iss` of bearer JWTs")
    auth_jwt_audience: str = _setting("", "required `aud` of bearer JWTs")
    auth_jwt_leeway: float = _setting(30.0, "seconds of clock skew allowed on JWT exp and nbf (at most 300)")
    auth_open_reflection: bool = _setting(False, "serve reflection without a credential while auth is on")

    watch_checkpoint: float = _setting(5.0, "seconds an idle Watch stream waits at most before sending a checkpoint")
    watch_streams: int = _setting(
        16, "most Watch streams per process (each holds a gRPC thread; at most half of --threads)"
    )
    event_retention: float = _setting(
        7 * 86_400.0, "seconds events are kept for Watch; older ones are pruned in the background"
    )

    @property
    def page_bytes(self) -> int:
        """The page budget in force: a page and its envelope always fit in a message."""
        return min(self.page_max_bytes, self.max_message_bytes // 2)

    @property
    def page_token_keys(self) -> tuple[bytes, ...]:
        return tuple(key.strip().encode() for key in self.page_token_key.split(",") if key.strip())

    @property
    def auth_enabled(self) -> bool:
        """Callers must present a credential: bearer tokens or mTLS identities are configured."""
        return bool(self.auth_tokens_file or self.auth_jwt_keys or self.tls_client_scopes)

    @property
    def windows(self) -> tuple[Window, ...]:
        return parse_windows(self.rate_limits)

    @property
    def stream_limit(self) -> int:
        """Watch streams per process: at most half the threads, so unary calls always have threads."""
        return max(1, min(self.watch_streams, self.threads // 2))

    def validate(self) -> Settings:
        """Raises ValueError naming the setting when a value is unusable."""
        try:
            self.windows  # noqa: B018 - parses
        except ValueError as exc:
            raise ValueError(f"rate_limits ({ENV_PREFIX}RATE_LIMITS / --rate-limits): {exc}") from None
        if self.trace_exporter not in TRACE_EXPORTERS:
            raise ValueError(f"trace_exporter must be one of {', '.join(TRACE_EXPORTERS)}, got {self.trace_exporter!r}")
        if not 0 <= self.trace_sample_ratio <= 1:
            raise ValueError(f"trace_sample_ratio must be between 0 and 1, got {self.trace_sample_ratio}")
        if self.log_format not in LOG_FORMATS:
            raise ValueError(f"log_format must be one of {', '.join(LOG_FORMATS)}, got {self.log_format!r}")
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
        if self.edge_batch_size < 1:
            raise ValueError("edge_batch_size must be at least 1")
        if self.job_batch_ms <= 0 or self.job_inline_ms < 0 or self.job_lease_ms <= 0:
            raise ValueError("job_batch_ms and job_lease_ms must be positive, job_inline_ms not negative")
        if self.max_staleness <= 0:
            raise ValueError(f"max_staleness must be positive, got {self.max_staleness!r}")
        if self.connection_limit < 1:
            raise ValueError("connection_limit must be at least 1")
        if min(self.max_message_bytes, self.page_max_bytes, self.max_concurrent_streams, self.max_concurrent_rpcs) < 1:
            raise ValueError(
                "max_message_bytes, page_max_bytes, max_concurrent_streams and max_concurrent_rpcs must be positive"
            )
        if self.threads < 1 or self.workers < 1:
            raise ValueError("threads and workers must be at least 1")
        if min(self.keepalive_time, self.keepalive_timeout, self.keepalive_min_ping_interval) <= 0:
            raise ValueError("keepalive_time, keepalive_timeout and keepalive_min_ping_interval must be positive")
        if self.max_connection_age < 0 or self.max_connection_age_grace < 0:
            raise ValueError("max_connection_age and max_connection_age_grace must not be negative")
        if self.watch_checkpoint <= 0 or self.event_retention <= 0:
            raise ValueError("watch_checkpoint and event_retention must be positive")
        if self.watch_streams < 1:
            raise ValueError("watch_streams must be at least 1")
        if not self.listen.rpartition(":")[2].isdigit():
            raise ValueError(f"listen must be host:port, got {self.listen!r}")
        if self.admin_listen and not self.admin_listen.rpartition(":")[2].isdigit():
            raise ValueError(f"admin_listen must be host:port, got {self.admin_listen!r}")
        if self.admin_listen and self.admin_listen == self.listen:
            raise ValueError("admin_listen must differ from listen")
        self._validate_security()
        return self

    def _validate_security(self) -> None:
        if bool(self.tls_cert) != bool(self.tls_key):
            raise ValueError("tls_cert and tls_key go together")
        if self.tls_client_ca and not self.tls_cert:
            raise ValueError("tls_client_ca needs tls_cert and tls_key")
        if self.tls_client_scopes and not self.tls_client_ca:
            raise ValueError(
                "tls_client_scopes needs tls_client_ca (identities come from verified client certificates)"
            )
        if self.auth_jwt_keys and not (self.auth_jwt_issuer and self.auth_jwt_audience):
            raise ValueError("auth_jwt_keys needs auth_jwt_issuer and auth_jwt_audience")
        if not 0 <= self.auth_jwt_leeway <= 300:
            raise ValueError(f"auth_jwt_leeway must be between 0 and 300 seconds, got {self.auth_jwt_leeway}")


def fields_for(command: str) -> list[dataclasses.Field[Any]]:
    return [f for f in dataclasses.fields(Settings) if command in f.metadata["commands"]]


def env_name(f: dataclasses.Field[Any]) -> str:
    return ENV_PREFIX + f.name.upper()


def _parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def _parser_type(f: dataclasses.Field[Any]) -> Callable[[str], Any]:
    parsers: dict[type, Callable[[str], Any]] = {bool: _parse_bool, int: int, float: float}
    return parsers.get(type(f.default), str)


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
