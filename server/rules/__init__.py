"""The rules layer: intents in, checks and one transaction each, domain
errors out. Nothing here imports grpc."""

from .errors import (
    ConnectionLimitReached,
    CursorExpired,
    GraphError,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    RateLimited,
    Reason,
    ShuttingDown,
    TooManyStreams,
)
from .events import EventLog
from .graph import BlockResult, ConnectionState, Graph, Page, Policy, SendResult, Stats

__all__ = [
    "BlockResult",
    "ConnectionLimitReached",
    "ConnectionState",
    "CursorExpired",
    "EventLog",
    "Graph",
    "GraphError",
    "InvalidArgument",
    "NotFound",
    "Page",
    "PermissionDenied",
    "Policy",
    "RateLimited",
    "Reason",
    "SendResult",
    "ShuttingDown",
    "Stats",
    "TooManyStreams",
]
