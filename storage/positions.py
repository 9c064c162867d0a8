"""Commit positions and consistency tokens.

A write's position names the state its transaction committed: on PostgreSQL
the WAL write position read right after its COMMIT returned (a replica that
has replayed up to it holds the write), on SQLite the value of the commit
counter its transaction bumped (writers take turns, so counter order is
commit order). A token is the position with the database's identity, so a
token from another database or schema is refused.

A process proves that its caches hold at least a token's state with what it
has seen of the positions itself (``Positions``): having read position P at
time T (P after the token's: on PostgreSQL strictly after, since equal WAL
positions may be read just before a commit becomes visible), every SQL read
started after T reflects the token's write.
"""

from __future__ import annotations

import base64
import bisect
import struct
import threading

from .clock import now_us

_FORMAT = 1
_LAYOUT = struct.Struct(">B16sQ")  # format, identity, position
_KEEP = 4096  # positions remembered


class InvalidToken(ValueError):
    """A consistency token that is malformed or names another database."""


def encode_token(identity: str, position: int) -> str:
    raw = _LAYOUT.pack(_FORMAT, bytes.fromhex(identity), position)
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_token(token: str, identity: str) -> int:
    """The position a token names; InvalidToken unless it is one of ours."""
    position: int
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        version, named, position = _LAYOUT.unpack(raw)
    except (ValueError, struct.error):
        raise InvalidToken("not a consistency token") from None
    if version != _FORMAT:
        raise InvalidToken("not a consistency token of this server's format")
    if named.hex() != identity:
        raise InvalidToken("a consistency token from another database")
    return position


class Positions:
    """The positions this process has seen, each with the time (µs, the
    caches' clock) by which it had seen it."""

    def __init__(self, strict: bool) -> None:
        self._strict = strict
        self._positions: list[int] = []
        self._times: list[int] = []
        self._lock = threading.Lock()

    def saw(self, position: int) -> None:
        """Records ``position``, read from the database just now."""
        seen_us = now_us()
        with self._lock:
            if self._positions and position <= self._positions[-1]:
                return  # an earlier time already covers it
            self._positions.append(position)
            self._times.append(seen_us)
            if len(self._positions) > 2 * _KEEP:
                del self._positions[:_KEEP], self._times[:_KEEP]

    def reflected_after(self, position: int) -> int | None:
        """The time after which every read started reflects ``position``;
        None while this process has not seen it."""
        with self._lock:
            find = bisect.bisect_right if self._strict else bisect.bisect_left
            i = find(self._positions, position)
            return self._times[i] if i < len(self._times) else None
