"""The rules layer: intents in, checks and one transaction each, domain
errors out. Nothing here imports grpc."""

from .errors import (
    ConnectionLimitReached,
    CursorExpired,
    GraphError,
    InvalidArgument,
    NotFound,
    Overloaded,
    PermissionDenied,
    RateLimited,
    Reason,
    ShuttingDown,
    TooManyStreams,
    Unauthenticated,
)
from .events import EventLog
from .graph import BlockResult, ConnectionState, Consistency, Graph, Page, Policy, SendResult, Stats
from .paging import PageTokens

__all__ = [
    "BlockResult",
    "ConnectionLimitReached",
    "Consistency",
    "ConnectionState",
    "CursorExpired",
    "EventLog",
    "Graph",
    "GraphError",
    "InvalidArgument",
    "NotFound",
    "Overloaded",
    "Page",
    "PageTokens",
    "PermissionDenied",
    "Policy",
    "RateLimited",
    "Reason",
    "SendResult",
    "ShuttingDown",
    "Stats",
    "TooManyStreams",
    "Unauthenticated",
]
