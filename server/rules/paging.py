"""Opaque keyset page tokens, authenticated by the server.

A token is the URL-safe base64 of ``<created_us>.<key>`` (the last item
returned) followed by a 16-byte HMAC-SHA256 over the kind of list, whose list
it is (the owner, or the report status) and that position. Only a server
holding the key can make one, so a token from another list, an edited one or
one that does not decode is INVALID_PAGE_TOKEN. The first key signs; every
key verifies, so a new key can be rolled out while tokens signed with the
previous one are still in use.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import hmac
import secrets
from collections.abc import Callable, Sequence
from typing import TypeVar

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
            Reason.INVALID_PAGE_SIZE,
            field,
            f"must be 0 (default {DEFAULT_PAGE_SIZE}) or 1..{MAX_PAGE_SIZE}, got {value}",
        )
    return value


MAC_BYTES = 16


class PageTokens:
    """Makes and checks page tokens with ``keys``: the first signs, any verifies."""

    def __init__(self, keys: Sequence[bytes]) -> None:
        if not keys or not all(keys):
            raise ValueError("at least one non-empty page token key is required")
        self._keys = tuple(keys)

    @classmethod
    def random(cls) -> PageTokens:
        """A key of this process alone (tests, and graphs outside a server)."""
        return cls([secrets.token_bytes(32)])

    def encode(self, kind: str, scope: str, cursor: Cursor) -> str:
        position = f"{cursor.created_us}.{cursor.key}".encode("ascii")
        raw = position + _mac(self._keys[0], kind, scope, position)
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")

    def decode(self, token: str, kind: str, scope: str) -> Cursor | None:
        if not token:
            return None
        try:
            raw = base64.urlsafe_b64decode(token.encode("ascii") + b"=" * (-len(token) % 4))
            position, mac = raw[:-MAC_BYTES], raw[-MAC_BYTES:]
            if len(raw) <= MAC_BYTES or not any(
                hmac.compare_digest(mac, _mac(key, kind, scope, position)) for key in self._keys
            ):
                raise ValueError(kind)
            created, key = position.decode("ascii").split(".", 1)
            if not CANONICAL_UUID.fullmatch(key) or not created.isdigit() or len(created) > 18:
                raise ValueError(kind)
            return Cursor(int(created), key)
        except (ValueError, UnicodeError, binascii.Error):
            raise InvalidArgument(
                Reason.INVALID_PAGE_TOKEN, "page_token", "not a page token of this list"
            ) from None

    def paginate(
        self,
        kind: str,
        scope: str,
        rows: Sequence[T],
        size: int,
        position: Callable[[T], Cursor],
        max_bytes: int | None = None,
    ) -> tuple[list[T], str]:
        """``rows`` was fetched with ``size + 1``; returns the page and the
        next token. With ``max_bytes``, the page also stops early, after at
        least one item, before its items would weigh more than that."""
        page = within(rows[:size], max_bytes)
        if len(page) == len(rows):
            return page, ""
        return page, self.encode(kind, scope, position(page[-1]))


# Per field of an item: its tag, length and any number or timestamp, generously.
_FIELD_BYTES = 16


def within(items: Sequence[T], max_bytes: int | None) -> list[T]:
    """The longest prefix of ``items`` (at least one) weighing at most ``max_bytes``."""
    if max_bytes is None:
        return list(items)
    total = 0
    for i, item in enumerate(items):
        total += weight(item)
        if total > max_bytes and i > 0:
            return list(items[:i])
    return list(items)


def weight(item: object) -> int:
    """An upper bound on the bytes ``item`` (a storage record) takes in a response."""
    names = _FIELD_NAMES.get(type(item)) or _field_names(type(item))
    total = _FIELD_BYTES * (1 + len(names))
    for name in names:
        value = getattr(item, name)
        if isinstance(value, str):
            total += len(value) if value.isascii() else len(value.encode())
    return total


# The field names of each record type, found once.
_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


def _field_names(record: type) -> tuple[str, ...]:
    names = _FIELD_NAMES[record] = tuple(f.name for f in dataclasses.fields(record))
    return names


def _mac(key: bytes, kind: str, scope: str, position: bytes) -> bytes:
    message = b"\0".join((kind.encode(), scope.encode(), position))
    return hmac.new(key, message, hashlib.sha256).digest()[:MAC_BYTES]
