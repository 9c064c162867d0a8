"""Opaque keyset page tokens.

A token is the URL-safe base64 of ``<list>.<scope>.<created_us>.<key>``: the
kind of list, a checksum of whose list it is (the owner, or the report
status), and the last item returned. A token from another list, or one that
does not decode, is INVALID_PAGE_TOKEN.
"""

from __future__ import annotations

import base64
import binascii
import zlib
from typing import Callable, Sequence, TypeVar

from storage.types import Cursor

from .errors import InvalidArgument, Reason
from .ids import CANONICAL_UUID

T = TypeVar("T")

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000


def page_size(value: int, field: str = "page_size") -> int:
    if value == 0:
        return DEFAULT_PAGE_SIZE
    if not 1 <= value <= MAX_PAGE_SIZE:
        raise InvalidArgument(
            Reason.INVALID_PAGE_SIZE, field, f"must be 0 (default {DEFAULT_PAGE_SIZE}) or 1..{MAX_PAGE_SIZE}, got {value}"
        )
    return value


def decode(token: str, kind: str, scope: str) -> Cursor | None:
    if not token:
        return None
    try:
        raw = base64.urlsafe_b64decode(token.encode("ascii") + b"=" * (-len(token) % 4))
        token_kind, token_scope, created, key = raw.decode("ascii").split(".", 3)
        if (
            (token_kind, token_scope) != (kind, _checksum(scope))
            or not CANONICAL_UUID.fullmatch(key)
            or not created.isdigit()
            or len(created) > 18
        ):
            raise ValueError(kind)
        return Cursor(int(created), key)
    except (ValueError, UnicodeError, binascii.Error):
        raise InvalidArgument(
            Reason.INVALID_PAGE_TOKEN, "page_token", "not a page token of this list"
        ) from None


def encode(kind: str, scope: str, cursor: Cursor) -> str:
    raw = f"{kind}.{_checksum(scope)}.{cursor.created_us}.{cursor.key}".encode("ascii")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _checksum(scope: str) -> str:
    return f"{zlib.crc32(scope.encode()):08x}"


def paginate(
    kind: str,
    scope: str,
    rows: Sequence[T],
    size: int,
    position: Callable[[T], Cursor],
) -> tuple[list[T], str]:
    """``rows`` was fetched with ``size + 1``; returns the page and the next token."""
    page = list(rows[:size])
    if len(rows) <= size:
        return page, ""
    return page, encode(kind, scope, position(page[-1]))
