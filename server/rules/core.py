"""What every rule family builds on: the state ``Graph`` is made of, the
readers that meet a read's consistency, and the checks and helpers the
families share (locking, events, removals, pages)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeGuard, TypeVar

from uuid6 import uuid7

from cache.readers import CounterReader, RelationshipReader, TokenCounterReader, TokenRelationshipReader
from cache.sql import SqlCounters, SqlRelationships
from ratelimit import Limiter
from storage.positions import InvalidToken
from storage.types import Cause, Change, Counts, Cursor, EventKind, Pair, Relationship, Storage, Tx, VersionedCounts

from . import paging
from .errors import InvalidArgument, NotFound, PermissionDenied, Reason
from .jobs import Jobs
from .policy import Consistency, Page, Policy

T = TypeVar("T")


def new_id() -> str:
    return str(uuid7())


class GraphCore:
    """The state every rule family reads; ``Graph`` sets it."""

    storage: Storage
    limiter: Limiter
    policy: Policy
    _now: Callable[[], int]
    _sql_counters: SqlCounters
    _sql_relationships: SqlRelationships
    counters: CounterReader
    relationships: RelationshipReader
    page_tokens: paging.PageTokens
    jobs: Jobs

    # ------------------------------------------------------------ consistency

    def consistency_token(self) -> str:
        """The token of the calling thread's last committed write."""
        return self.storage.last_token()

    def _readers(self, consistency: Consistency) -> tuple[CounterReader, RelationshipReader]:
        """The counter and relationship readers that meet ``consistency``.
        A token is served from the caches only when this process has seen
        its position and the caches can prove their entries were read after
        that (caches straight over SQL); otherwise from SQL, after noting
        the position now, so that later reads of that token can use them."""
        if consistency.fully_consistent:
            return self._sql_counters, self._sql_relationships
        if not consistency.at_least_as_fresh:
            return self.counters, self.relationships
        position = self._token_position(consistency)
        assert position is not None  # at_least_as_fresh is set
        counters, relationships = self.counters, self.relationships
        if not (_counters_prove(counters) and _relationships_prove(relationships)):
            return self._sql_counters, self._sql_relationships
        after = self.storage.positions.reflected_after(position)
        if after is not None:
            return _CountersAfter(counters, after), _RelationshipsAfter(relationships, after)
        self.storage.observe_position()
        return self._sql_counters, self._sql_relationships

    def _token_position(self, consistency: Consistency) -> int | None:
        """Checks the token; reads that always go to SQL need nothing more."""
        if not consistency.at_least_as_fresh:
            return None
        try:
            return self.storage.token_position(consistency.at_least_as_fresh)
        except InvalidToken as exc:
            raise InvalidArgument(Reason.INVALID_CONSISTENCY_TOKEN, "consistency.at_least_as_fresh", str(exc)) from None

    def _interactable(self, user_id: str, other_ids: Sequence[str], consistency: Consistency) -> dict[str, bool]:
        """Whether no block stands between ``user_id`` and each other user:
        the one source of every safety check (CanInteract,
        FilterInteractable, viewer-scoped lists, a relationship's
        can_interact), so they agree for the same freshness. One pair reads
        (and caches) its whole relationship; a batch reads what is cached
        and only the blocks of the rest."""
        _counters, relationships = self._readers(consistency)
        if len(other_ids) == 1:
            return {other: r.can_interact for other, r in relationships.get(user_id, other_ids).items()}
        return relationships.interactable(user_id, other_ids)

    # ---------------------------------------------------------------- helpers

    def _page(self, kind: str, scope: str, rows: list[T], size: int, position: Callable[[T], Cursor]) -> Page[T]:
        items, token = self.page_tokens.paginate(kind, scope, rows, size, position, self.policy.page_bytes)
        return Page(items, token)

    def _removal(
        self, user_ids: tuple[str, ...], remove: Callable[[Tx], object], kind: EventKind, actor: str, subject: str
    ) -> bool:
        """Locks the users, removes one edge; an event when there was one."""

        def run(tx: Tx) -> bool:
            # A user being deleted has no edge left to remove: its job removes them.
            if tx.deleting(tx.lock_users(user_ids)) or not remove(tx):
                return False
            _emit(tx, kind, actor, subject, self._now())
            return True

        return self.storage.read_write(run)


def _emit(
    tx: Tx,
    kind: EventKind,
    actor: str,
    subject: str,
    now: int,
    cause: Cause = Cause.REQUEST,
    **details: dict[str, object],
) -> None:
    """Appends one event; ``details`` is the kind's message (see ``Change``)."""
    tx.emit(Change(kind, actor, subject, now, {"cause": int(cause), **details}))


def _distinct(field: str, user_id: str, other_id: str) -> None:
    if user_id == other_id:
        raise InvalidArgument(Reason.SELF_RELATIONSHIP, field, "a user cannot relate to themself")


def _lock_present(tx: Tx, user_ids: tuple[str, ...]) -> dict[str, Counts]:
    """Locks the users of a write that creates something; a user whose
    deletion is in progress is USER_NOT_FOUND until it finishes."""
    counts = tx.lock_users(user_ids)
    for gone in sorted(tx.deleting(user_ids)):
        raise NotFound(Reason.USER_NOT_FOUND, f"user {gone} is being deleted; retry once the deletion has finished")
    return counts


def _refuse_if_blocked(pair: Pair) -> None:
    if pair.blocked_either_way:
        raise PermissionDenied(Reason.BLOCKED, "a block between these users forbids this")


def _counters_prove(reader: CounterReader) -> TypeGuard[TokenCounterReader]:
    return bool(getattr(reader, "proves_tokens", False))


def _relationships_prove(reader: RelationshipReader) -> TypeGuard[TokenRelationshipReader]:
    return bool(getattr(reader, "proves_tokens", False))


class _CountersAfter:
    """A counter cache read that serves only entries read after ``after`` (µs)."""

    def __init__(self, reader: TokenCounterReader, after: int) -> None:
        self._reader = reader
        self._after = after

    def get(self, user_ids: Sequence[str]) -> dict[str, VersionedCounts]:
        return self._reader.get(user_ids, newer_than=self._after)


class _RelationshipsAfter:
    """A relationship cache read that serves only entries read after ``after`` (µs)."""

    def __init__(self, reader: TokenRelationshipReader, after: int) -> None:
        self._reader = reader
        self._after = after

    def get(self, user_id: str, other_ids: Sequence[str]) -> dict[str, Relationship]:
        return self._reader.get(user_id, other_ids, newer_than=self._after)

    def interactable(self, user_id: str, other_ids: Sequence[str]) -> dict[str, bool]:
        return self._reader.interactable(user_id, other_ids, newer_than=self._after)
