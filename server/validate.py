"""Request checks that need no database: ids, lengths, enums, batch sizes.
Each failure is an ``InvalidArgument`` naming the field."""

from __future__ import annotations

import enum
from typing import Iterable, TypeVar

from .rules import Consistency, InvalidArgument, Reason
from .rules.graph import MINIMIZE_LATENCY
from .rules.ids import UUID

E = TypeVar("E", bound=enum.IntEnum)

MAX_BATCH = 100
MAX_FILTER_BATCH = 1000
MESSAGE_MAX = 500
BLOCK_REASON_MAX = 500
REPORT_DETAILS_MAX = 2000
NOTE_MAX = 2000
DISPLAY_NAME_MAX = 200
AVATAR_URL_MAX = 2048


def user_id(value: str, field: str) -> str:
    """A required user id in canonical (lowercase) form."""
    if not value:
        raise InvalidArgument(Reason.MISSING_FIELD, field, "is required")
    if not UUID.fullmatch(value):
        raise InvalidArgument(
            Reason.INVALID_USER_ID, field, "must be a UUID like 0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"
        )
    return value.lower()


def optional_user_id(value: str, field: str) -> str | None:
    return user_id(value, field) if value else None


def user_ids(values: Iterable[str], field: str, limit: int = MAX_BATCH, required: bool = True) -> list[str]:
    values = list(values)
    if required and not values:
        raise InvalidArgument(Reason.MISSING_FIELD, field, "needs at least one id")
    if len(values) > limit:
        raise InvalidArgument(Reason.TOO_MANY_IDS, field, f"takes at most {limit} ids, got {len(values)}")
    return [user_id(value, f"{field}[{i}]") for i, value in enumerate(values)]


def record_id(value: str, field: str) -> str | None:
    """A required id of a record the service made; None when malformed
    (such an id names no record)."""
    if not value:
        raise InvalidArgument(Reason.MISSING_FIELD, field, "is required")
    return value.lower() if UUID.fullmatch(value) else None


def text(value: str, field: str, limit: int) -> str:
    if len(value) > limit:
        raise InvalidArgument(
            Reason.FIELD_TOO_LONG, field, f"must be at most {limit} characters, got {len(value)}"
        )
    if "\x00" in value:
        raise InvalidArgument(Reason.INVALID_TEXT, field, "must not contain NUL characters")
    return value


def enum_value(value: int, field: str, kind: type[E]) -> E:
    """A proto enum number as the domain enum; UNSPECIFIED (0) and unknown
    numbers are refused."""
    try:
        return kind(value)
    except ValueError:
        allowed = ", ".join(str(int(member)) for member in kind)
        raise InvalidArgument(Reason.INVALID_ENUM, field, f"must be one of {allowed}, got {value}") from None


MUTUAL_DEFAULT = 10
MUTUAL_MAX = 100


def mutual_limit(value: int) -> int:
    if value == 0:
        return MUTUAL_DEFAULT
    if not 1 <= value <= MUTUAL_MAX:
        raise InvalidArgument(
            Reason.INVALID_PAGE_SIZE, "limit", f"must be 0 (default {MUTUAL_DEFAULT}) or 1..{MUTUAL_MAX}, got {value}"
        )
    return value


def consistency(message) -> Consistency:
    """A read's ``consistency`` (socialgraph.v1.Consistency); unset is minimize_latency."""
    which = message.WhichOneof("requirement")
    if which == "at_least_as_fresh":
        if not message.at_least_as_fresh:
            raise InvalidArgument(Reason.INVALID_CONSISTENCY_TOKEN, "consistency.at_least_as_fresh", "is empty")
        return Consistency(at_least_as_fresh=message.at_least_as_fresh)
    if which == "fully_consistent" and message.fully_consistent:
        return Consistency(fully_consistent=True)
    return MINIMIZE_LATENCY
