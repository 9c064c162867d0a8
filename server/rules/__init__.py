"""The rules layer: intents in, checks and one transaction each, domain
errors out. Nothing here imports grpc."""

from .errors import (
    ConnectionLimitReached,
    GraphError,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    RateLimited,
    Reason,
)
from .graph import BlockResult, Consistency, ConnectionState, Graph, Page, Policy, SendResult, Stats

__all__ = [
    "BlockResult",
    "ConnectionLimitReached",
    "Consistency",
    "ConnectionState",
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
    "Stats",
]
