"""Log output: the text format (the default) or one JSON object per line,
and the access log, one line per RPC."""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import grpc
from google.rpc import error_details_pb2, status_pb2

from .interceptors import KINDS, Behavior, Handler, HandlerWrapper

ACCESS = logging.getLogger("socialgraph.access")

# Fields of an access line, in the order the text format prints them.
_ACCESS_FIELDS = ("method", "code", "reason", "duration_ms", "caller", "peer", "request_id")


def configure(level: str, log_format: str, *, worker: int | None = None) -> None:
    handler = logging.StreamHandler()
    if log_format == "json":
        handler.setFormatter(JsonFormatter(worker))
    else:
        where = "" if worker is None else f" [worker {worker}]"
        handler.setFormatter(logging.Formatter(f"%(asctime)s %(levelname)s %(name)s{where} %(message)s"))
    logging.basicConfig(level=level.upper(), handlers=[handler])
    if level.upper() != "DEBUG":
        logging.getLogger("alembic").setLevel(logging.WARNING)


class JsonFormatter(logging.Formatter):
    """``{"time", "level", "logger", "message", ...}``; access lines add their fields."""

    def __init__(self, worker: int | None = None) -> None:
        super().__init__()
        self._worker = worker

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if self._worker is not None:
            line["worker"] = self._worker
        line.update(getattr(record, "rpc", {}))
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False)


JsonFormatter.converter = time.gmtime


# ------------------------------------------------------------------ callers

_caller = threading.local()


def note_caller(name: str) -> None:
    """Records who is making the RPC running on this thread (for its access line)."""
    _caller.name = name


def _take_caller() -> str:
    name = getattr(_caller, "name", "")
    _caller.name = ""
    return name


# --------------------------------------------------------------- access log


class AccessLogInterceptor(HandlerWrapper):
    """Logs one line per RPC: method, code, reason, duration, caller, peer
    and request id (the caller's ``x-request-id``, or a new one)."""

    def wrap(self, method: str, handler: Handler) -> Handler:
        # grpc's handlers are namedtuples; the stubs declare only the abstract class.
        return handler._replace(  # type: ignore[attr-defined, no-any-return]
            **{
                kind: _logged(method, getattr(handler, kind), streaming=kind.endswith("_stream"))
                for kind in KINDS
                if getattr(handler, kind) is not None
            }
        )


def _logged(method: str, behavior: Behavior, streaming: bool) -> Behavior:
    if streaming:

        def logged_stream(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
            start, failed = time.perf_counter(), False
            _take_caller()
            try:
                yield from behavior(request, context)
            except BaseException:
                failed = True
                raise
            finally:
                _log(method, context, time.perf_counter() - start, failed)

        return logged_stream

    def logged(request: Any, context: grpc.ServicerContext) -> Any:
        start, failed = time.perf_counter(), False
        _take_caller()
        try:
            return behavior(request, context)
        except BaseException:
            failed = True
            raise
        finally:
            _log(method, context, time.perf_counter() - start, failed)

    return logged


def _log(method: str, context: grpc.ServicerContext, seconds: float, failed: bool) -> None:
    code = context.code() or (grpc.StatusCode.UNKNOWN if failed else grpc.StatusCode.OK)  # type: ignore[attr-defined]  # grpcio has it; its stubs lack it
    request_id = next((v for k, v in context.invocation_metadata() if k == "x-request-id"), None)
    fields = {
        "method": method,
        "code": code.name,
        "reason": _reason(context) if code is not grpc.StatusCode.OK else "",
        "duration_ms": round(seconds * 1000, 3),
        "caller": _take_caller(),
        "peer": context.peer(),
        "request_id": str(request_id)[:128] if request_id else uuid.uuid4().hex,
    }
    text = " ".join(f"{name}={fields[name]}" for name in _ACCESS_FIELDS if fields[name] != "")
    ACCESS.info("rpc %s", text, extra={"rpc": fields})


def _reason(context: grpc.ServicerContext) -> str:
    for key, value in context.trailing_metadata() or ():
        if key == "grpc-status-details-bin" and isinstance(value, bytes):
            status = status_pb2.Status.FromString(value)
            for detail in status.details:
                info = error_details_pb2.ErrorInfo()
                if detail.Unpack(info):  # False for any other detail type
                    return info.reason
    return ""
