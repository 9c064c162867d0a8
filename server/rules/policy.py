"""The rules' configuration (``Policy``) and the values the rules take and
return: results of writes, pages of lists, and how fresh a read must be."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Generic, TypeVar

from storage.types import Block, ConnectionRequest, Removed, Totals

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Policy:
    """The configurable rules, and the limits the edge checks before any
    transaction (it asks this object; the wire errors are its own)."""

    connection_limit: int = 2000
    # Most code points of each free-text field.
    message_max: int = 500  # C8: a connection request's message
    block_reason_max: int = 500  # B6: a block's reason
    report_details_max: int = 2000  # R1: a report's details
    note_max: int = 2000  # R2: a resolution's note
    display_name_max: int = 200  # R3
    avatar_url_max: int = 2048  # R3
    # GetMutualConnections: users returned when the request asks for 0, and at most.
    mutual_default: int = 10
    mutual_max: int = 100
    auto_follow: bool = True
    # URL schemes an avatar may use.
    avatar_schemes: tuple[str, ...] = ("https",)
    # Most bytes of items in one page; a page stops early rather than pass it.
    page_bytes: int = 512 * 1024
    # Most edges one transaction of a big account's deletion or promotion
    # removes; batches are sized to ``batch_seconds`` below that.
    edge_batch: int = 250
    batch_seconds: float = 0.015
    # How long DeleteUser and UpsertUser run their own big-account job
    # before leaving it to the background runner; None: to the end.
    inline_seconds: float | None = None
    # How long a claimed job stays with a process that stops renewing it.
    job_lease_seconds: float = 10.0


class ConnectionState(enum.IntEnum):
    PENDING = 1
    CONNECTED = 2


@dataclass(frozen=True, slots=True)
class SendResult:
    state: ConnectionState
    created: bool
    request: ConnectionRequest | None = None
    connected_us: int | None = None


@dataclass(frozen=True, slots=True)
class BlockResult:
    block: Block
    created: bool
    removed: Removed


@dataclass(frozen=True, slots=True)
class Stats:
    total: Totals
    last_24h: Totals


@dataclass(frozen=True, slots=True)
class Consistency:
    """How fresh a read must be (SPEC "Consistency"). The default may be
    answered from caches within the staleness bound; ``at_least_as_fresh``
    (a write's consistency token) reflects that write and every write
    committed before it; ``fully_consistent`` reads SQL."""

    at_least_as_fresh: str = ""
    fully_consistent: bool = False


MINIMIZE_LATENCY = Consistency()


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    items: list[T]
    next_page_token: str
