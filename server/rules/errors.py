"""Domain errors: what the rules layer says went wrong, in the SPEC's words.
``server/errors.py`` turns each into a gRPC status; nothing here knows gRPC.

GraphError
├── InvalidArgument          INVALID_ARGUMENT (reason says which check)
├── Unauthenticated          UNAUTHENTICATED: UNAUTHENTICATED (no valid credential)
├── PermissionDenied         PERMISSION_DENIED: BLOCKED, CANNOT_BLOCK_STAFF, NOT_A_MODERATOR, MISSING_SCOPE
├── NotFound                 NOT_FOUND: REQUEST_NOT_FOUND, USER_NOT_FOUND, REPORT_NOT_FOUND
├── RateLimited              RESOURCE_EXHAUSTED: RATE_LIMITED
├── ConnectionLimitReached   RESOURCE_EXHAUSTED: CONNECTION_LIMIT_REACHED
├── Overloaded               RESOURCE_EXHAUSTED: OVERLOADED (the process sheds load)
├── TooManyStreams           RESOURCE_EXHAUSTED: TOO_MANY_STREAMS
├── CursorExpired            FAILED_PRECONDITION: CURSOR_EXPIRED
└── ShuttingDown             UNAVAILABLE: SHUTTING_DOWN
"""

from __future__ import annotations

import enum

from ratelimit import Window


class Reason(enum.StrEnum):
    INVALID_USER_ID = "INVALID_USER_ID"
    SELF_RELATIONSHIP = "SELF_RELATIONSHIP"
    FIELD_TOO_LONG = "FIELD_TOO_LONG"
    INVALID_PAGE_SIZE = "INVALID_PAGE_SIZE"
    INVALID_PAGE_TOKEN = "INVALID_PAGE_TOKEN"
    INVALID_CONSISTENCY_TOKEN = "INVALID_CONSISTENCY_TOKEN"
    TOO_MANY_IDS = "TOO_MANY_IDS"
    INVALID_ENUM = "INVALID_ENUM"
    MISSING_FIELD = "MISSING_FIELD"
    INVALID_TEXT = "INVALID_TEXT"
    MALFORMED_REQUEST = "MALFORMED_REQUEST"
    BLOCKED = "BLOCKED"
    CANNOT_BLOCK_STAFF = "CANNOT_BLOCK_STAFF"
    NOT_A_MODERATOR = "NOT_A_MODERATOR"
    REQUEST_NOT_FOUND = "REQUEST_NOT_FOUND"
    USER_NOT_FOUND = "USER_NOT_FOUND"
    REPORT_NOT_FOUND = "REPORT_NOT_FOUND"
    RATE_LIMITED = "RATE_LIMITED"
    CONNECTION_LIMIT_REACHED = "CONNECTION_LIMIT_REACHED"
    STORAGE_UNAVAILABLE = "STORAGE_UNAVAILABLE"
    OVERLOADED = "OVERLOADED"
    UNAUTHENTICATED = "UNAUTHENTICATED"
    MISSING_SCOPE = "MISSING_SCOPE"
    INVALID_CURSOR = "INVALID_CURSOR"
    CURSOR_EXPIRED = "CURSOR_EXPIRED"
    TOO_MANY_STREAMS = "TOO_MANY_STREAMS"
    SHUTTING_DOWN = "SHUTTING_DOWN"


class GraphError(Exception):
    """Base class: a reason, a message for humans, and metadata for machines."""

    reason: Reason

    def __init__(self, reason: Reason, message: str, **metadata: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.metadata = metadata


class InvalidArgument(GraphError):
    def __init__(self, reason: Reason, field: str, message: str) -> None:
        super().__init__(reason, f"{field}: {message}", field=field)
        self.field = field


class Unauthenticated(GraphError):
    def __init__(self, message: str) -> None:
        super().__init__(Reason.UNAUTHENTICATED, message)


class PermissionDenied(GraphError):
    pass


class NotFound(GraphError):
    pass


class RateLimited(GraphError):
    def __init__(self, user_id: str, window: Window, retry_after: float) -> None:
        super().__init__(
            Reason.RATE_LIMITED,
            f"too many connection requests: at most {window.limit} per "
            f"{window.seconds} seconds; retry in {retry_after:.1f} s",
            user_id=user_id,
            window=str(window),
        )
        self.user_id = user_id
        self.window = window
        self.retry_after = retry_after


class ConnectionLimitReached(GraphError):
    def __init__(self, user_id: str, limit: int) -> None:
        super().__init__(
            Reason.CONNECTION_LIMIT_REACHED,
            f"user {user_id} has reached the limit of {limit} connections",
            user_id=user_id,
            limit=str(limit),
        )
        self.user_id = user_id


class Overloaded(GraphError):
    """The process has as many calls in flight as it takes, and this
    caller has at least its share of them: retry after ``retry_after``."""

    def __init__(self, in_flight: int, limit: int, retry_after: float) -> None:
        super().__init__(
            Reason.OVERLOADED,
            f"the server is overloaded ({in_flight} calls in flight, limit {limit}); retry in {retry_after:.1f} s",
            limit=str(limit),
        )
        self.retry_after = retry_after
class TooManyStreams(GraphError):
    def __init__(self, limit: int) -> None:
        super().__init__(
            Reason.TOO_MANY_STREAMS,
            f"this server process already serves {limit} streams; retry later or on another process",
            limit=str(limit),
        )


class CursorExpired(GraphError):
    def __init__(self) -> None:
        super().__init__(
            Reason.CURSOR_EXPIRED,
            "events after this cursor were removed by retention; start again from a fresh state",
        )


class ShuttingDown(GraphError):
    def __init__(self) -> None:
        super().__init__(Reason.SHUTTING_DOWN, "the server is shutting down; resume from the last cursor received")
