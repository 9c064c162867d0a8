"""Request checks that need no database: ids, lengths, enums, batch sizes.
Each failure is an ``InvalidArgument`` naming the field."""

from __future__ import annotations

import enum
import unicodedata
from collections.abc import Iterable
from typing import TypeVar
from urllib.parse import urlsplit

from socialgraph.v1 import common_pb2

from .rules import Consistency, InvalidArgument, Policy, Reason
from .rules.graph import MINIMIZE_LATENCY
from .rules.ids import UUID

E = TypeVar("E", bound=enum.IntEnum)

# Request shape: how many ids one call may carry. Text limits and the
# mutual-connections limit are rules: they come from ``Policy``.
MAX_BATCH = 100
MAX_FILTER_BATCH = 1000


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
    checked = _well_formed(values)
    if checked is not None:
        return checked
    # Some id is missing or malformed: the first one is the error.
    return [user_id(value, f"{field}[{i}]") for i, value in enumerate(values)]


_UUID_LENGTH = 36
_DASHES = (8, 13, 18, 23)
_ID_CHARS = b"0123456789abcdefABCDEF-"


def _well_formed(values: list[str]) -> list[str] | None:
    """``values`` in canonical form when every one is a UUID (what
    ``user_id`` accepts), checked over the joined list at once with string
    methods instead of a match per id; None when any is not."""
    count = len(values)
    if not count or set(map(len, values)) != {_UUID_LENGTH}:
        return None
    joined = "".join(values)
    if not joined.isascii() or joined.encode().translate(None, _ID_CHARS):
        return None  # a character that is neither a hex digit nor a dash
    # Every id has its four dashes in place and no other.
    if joined.count("-") != len(_DASHES) * count:
        return None
    if any(joined[at::_UUID_LENGTH] != "-" * count for at in _DASHES):
        return None
    lowered = joined.lower()
    if lowered == joined:
        return values
    return [lowered[at : at + _UUID_LENGTH] for at in range(0, len(lowered), _UUID_LENGTH)]


def record_id(value: str, field: str) -> str | None:
    """A required id of a record the service made; None when malformed
    (such an id names no record)."""
    if not value:
        raise InvalidArgument(Reason.MISSING_FIELD, field, "is required")
    return value.lower() if UUID.fullmatch(value) else None


# Free text (messages, reasons, notes) keeps tabs and line breaks but no other
# control character, and none of the bidi controls that reorder what follows
# them (embeddings and overrides).
_BIDI_OVERRIDES = frozenset("\u202a\u202b\u202c\u202d\u202e")
_TEXT_CONTROLS_ALLOWED = frozenset("\t\n\r")
# Names are one line, and show exactly what they say: besides controls,
# no bidi control at all (marks and isolates included) and no invisible or
# zero-width character. A zero-width joiner is kept between two symbols, where
# it builds one emoji (👩‍💻), and so are tag characters, which build flags.
_BIDI_CONTROLS = _BIDI_OVERRIDES | frozenset("\u200e\u200f\u061c\u2066\u2067\u2068\u2069")
_ZWJ = "\u200d"


def text(value: str, field: str, limit: int) -> str:
    """Free text of at most ``limit`` code points (so at most 4 × ``limit``
    bytes of UTF-8)."""
    _length(value, field, limit)
    if "\x00" in value:
        raise InvalidArgument(Reason.INVALID_TEXT, field, "must not contain NUL characters")
    for ch in value:
        if ch in _BIDI_OVERRIDES or (_is_control(ch) and ch not in _TEXT_CONTROLS_ALLOWED):
            raise InvalidArgument(
                Reason.INVALID_TEXT, field, f"must not contain control or bidi override characters, got U+{ord(ch):04X}"
            )
    return value


def display_name(value: str, field: str, policy: Policy) -> str:
    """A one-line name of at most ``policy.display_name_max`` code points
    that renders as what it says: no control, bidi or zero-width characters."""
    text(value, field, policy.display_name_max)
    for i, ch in enumerate(value):
        if ch == _ZWJ and _is_symbol(value, i - 1) and _is_symbol(value, i + 1):
            continue
        if ch in _BIDI_CONTROLS or _is_control(ch) or _is_invisible(ch):
            raise InvalidArgument(
                Reason.INVALID_TEXT,
                field,
                f"must not contain control, bidi or zero-width characters, got U+{ord(ch):04X}",
            )
    return value


def avatar_url(value: str, field: str, policy: Policy) -> str:
    """Empty, or an absolute URL of one of ``policy.avatar_schemes`` with a
    host, in ASCII (percent-encoded), so its length in bytes is its length in
    characters."""
    _length(value, field, policy.avatar_url_max)
    if not value:
        return value
    allowed = tuple(policy.avatar_schemes)
    try:
        parts = urlsplit(value)
        host = parts.hostname
    except ValueError:
        parts, host = None, None
    if (
        parts is None
        or not value.isascii()
        or any(ch.isspace() or _is_control(ch) for ch in value)
        or parts.scheme not in allowed
        or not host
    ):
        raise InvalidArgument(
            Reason.INVALID_TEXT,
            field,
            f"must be an absolute {' or '.join(allowed)} URL with a host, in ASCII (percent-encode the rest)",
        )
    return value


def _length(value: str, field: str, limit: int) -> None:
    if len(value) > limit:
        raise InvalidArgument(
            Reason.FIELD_TOO_LONG, field, f"must be at most {limit} characters, got {len(value)}"
        )


def _is_control(ch: str) -> bool:
    return unicodedata.category(ch) in ("Cc", "Zl", "Zp")


def _is_invisible(ch: str) -> bool:
    """Format characters (zero-width spaces and joiners, word joiner, BOM,
    soft hyphen...), except tag characters."""
    return unicodedata.category(ch) == "Cf" and not "\U000e0020" <= ch <= "\U000e007f"


def _is_symbol(value: str, i: int) -> bool:
    """An emoji-like character at ``i``, or a variation selector or modifier after one."""
    if not 0 <= i < len(value):
        return False
    return unicodedata.category(value[i]) in ("So", "Sk") or value[i] == "\ufe0f"


def enum_value(value: int, field: str, kind: type[E]) -> E:
    """A proto enum number as the domain enum; UNSPECIFIED (0) and unknown
    numbers are refused."""
    try:
        return kind(value)
    except ValueError:
        allowed = ", ".join(str(int(member)) for member in kind)
        raise InvalidArgument(Reason.INVALID_ENUM, field, f"must be one of {allowed}, got {value}") from None


def mutual_limit(value: int, policy: Policy) -> int:
    """GetMutualConnections' ``limit``: 0 is the policy's default."""
    if value == 0:
        return policy.mutual_default
    if not 1 <= value <= policy.mutual_max:
        raise InvalidArgument(
            Reason.INVALID_PAGE_SIZE,
            "limit",
            f"must be 0 (default {policy.mutual_default}) or 1..{policy.mutual_max}, got {value}",
        )
    return value


def consistency(message: common_pb2.Consistency) -> Consistency:
    """A read's ``consistency`` (socialgraph.v1.Consistency); unset is minimize_latency."""
    which = message.WhichOneof("requirement")
    if which == "at_least_as_fresh":
        if not message.at_least_as_fresh:
            raise InvalidArgument(Reason.INVALID_CONSISTENCY_TOKEN, "consistency.at_least_as_fresh", "is empty")
        return Consistency(at_least_as_fresh=message.at_least_as_fresh)
    if which == "fully_consistent" and message.fully_consistent:
        return Consistency(fully_consistent=True)
    return MINIMIZE_LATENCY
