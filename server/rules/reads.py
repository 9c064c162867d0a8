"""Reads: relationships, counts, interactability, lists (B4, N1), stats."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

from storage.types import (
    Block,
    ConnectionRequest,
    CounterFix,
    Counts,
    Cursor,
    FeedSource,
    RelatedUser,
    Relationship,
    Tx,
)

from . import paging
from .core import GraphCore, _distinct
from .errors import PermissionDenied, Reason
from .policy import MINIMIZE_LATENCY, Consistency, Page, Stats

DAY_US = 86_400 * 1_000_000
T = TypeVar("T")


class ReadRules(GraphCore):
    # ------------------------------------------------------------------ reads

    def get_relationship(
        self, user_id: str, other_id: str, consistency: Consistency = MINIMIZE_LATENCY
    ) -> Relationship:
        _distinct("other_user_id", user_id, other_id)
        return self._readers(consistency)[1].get(user_id, [other_id])[other_id]

    def batch_get_relationships(
        self, user_id: str, other_ids: Sequence[str], consistency: Consistency = MINIMIZE_LATENCY
    ) -> list[Relationship]:
        for other_id in other_ids:
            _distinct("other_user_ids", user_id, other_id)
        found = self._readers(consistency)[1].get(user_id, other_ids)
        return [found[other_id] for other_id in other_ids]

    def get_counts(self, user_ids: Sequence[str], consistency: Consistency = MINIMIZE_LATENCY) -> list[Counts]:
        found = self._readers(consistency)[0].get(user_ids)
        return [found[user_id].counts if user_id in found else Counts(user_id) for user_id in user_ids]

    def can_interact(self, user_id: str, other_id: str, consistency: Consistency = MINIMIZE_LATENCY) -> bool:
        _distinct("other_user_id", user_id, other_id)
        return self._interactable(user_id, [other_id], consistency)[other_id]

    def filter_interactable(
        self, user_id: str, candidate_ids: Sequence[str], consistency: Consistency = MINIMIZE_LATENCY
    ) -> list[str]:
        self._token_position(consistency)
        others = [c for c in candidate_ids if c != user_id]
        allowed = self._interactable(user_id, others, consistency) if others else {}
        return [c for c in candidate_ids if c == user_id or allowed[c]]

    def mutual_connections(
        self, user_id: str, other_id: str, limit: int, consistency: Consistency = MINIMIZE_LATENCY
    ) -> tuple[int, list[RelatedUser]]:
        _distinct("other_user_id", user_id, other_id)
        self._refuse_if_blocked(user_id, other_id, consistency)
        count, users = self.storage.read_only(
            lambda tx: (0, []) if tx.deleting((user_id, other_id)) else tx.mutual_connections(user_id, other_id, limit)
        )
        return count, paging.within(users, self.policy.page_bytes)

    def list_followers(
        self, user_id: str, size: int, token: str, viewer_id: str | None, consistency: Consistency = MINIMIZE_LATENCY
    ) -> Page[RelatedUser]:
        return self._list_users("followers", "list_followers", user_id, size, token, viewer_id, consistency)

    def list_following(
        self, user_id: str, size: int, token: str, viewer_id: str | None, consistency: Consistency = MINIMIZE_LATENCY
    ) -> Page[RelatedUser]:
        return self._list_users("following", "list_following", user_id, size, token, viewer_id, consistency)

    def list_connections(
        self, user_id: str, size: int, token: str, viewer_id: str | None, consistency: Consistency = MINIMIZE_LATENCY
    ) -> Page[RelatedUser]:
        return self._list_users("connections", "list_connections", user_id, size, token, viewer_id, consistency)

    def _list_users(
        self,
        kind: str,
        query: str,
        user_id: str,
        size: int,
        token: str,
        viewer_id: str | None,
        consistency: Consistency,
    ) -> Page[RelatedUser]:
        """B4: a viewer on either side of a block with the owner sees nothing,
        and users on either side of a block with the viewer are left out.
        Lists are read from SQL, which meets every consistency."""
        after = self.page_tokens.decode(token, kind, user_id)
        self._token_position(consistency)
        if viewer_id == user_id:
            viewer_id = None
        if viewer_id is not None:
            self._refuse_if_blocked(viewer_id, user_id, consistency)
        # Empty while the owner's deletion is in progress (the list's one statement checks).
        rows = self.storage.read_only(lambda tx: getattr(tx, query)(user_id, after, size + 1, viewer_id))
        return self._page(kind, user_id, rows, size, lambda u: Cursor(u.since_us, u.user_id))

    def _refuse_if_blocked(self, user_id: str, other_id: str, consistency: Consistency) -> None:
        if not self._interactable(user_id, [other_id], consistency)[other_id]:
            raise PermissionDenied(Reason.BLOCKED, "a block between these users forbids this")

    def list_requests(
        self, user_id: str, incoming: bool, size: int, token: str, consistency: Consistency = MINIMIZE_LATENCY
    ) -> Page[ConnectionRequest]:
        kind = "incoming" if incoming else "outgoing"
        after = self.page_tokens.decode(token, kind, user_id)
        self._token_position(consistency)
        rows = self.storage.read_only(
            lambda tx: _unless_deleting(tx, user_id, tx.list_requests, incoming, after, size + 1)
        )
        return self._page(kind, user_id, rows, size, lambda r: Cursor(r.created_us, r.request_id))

    def list_blocked(
        self, user_id: str, size: int, token: str, consistency: Consistency = MINIMIZE_LATENCY
    ) -> Page[Block]:
        after = self.page_tokens.decode(token, "blocked", user_id)
        self._token_position(consistency)
        rows = self.storage.read_only(lambda tx: _unless_deleting(tx, user_id, tx.list_blocked, after, size + 1))
        return self._page("blocked", user_id, rows, size, lambda b: Cursor(b.created_us, b.blocked_id))

    def list_feed_sources(
        self, user_id: str, size: int, token: str, consistency: Consistency = MINIMIZE_LATENCY
    ) -> Page[FeedSource]:
        """N1: authors followed; private posts only from connections."""
        after = self.page_tokens.decode(token, "feed", user_id)
        self._token_position(consistency)
        rows: list[FeedSource] = self.storage.read_only(
            lambda tx: _unless_deleting(tx, user_id, tx.list_feed_sources, after, size + 1)
        )
        return self._page("feed", user_id, rows, size, lambda s: Cursor(s.since_us, s.author_id))

    def stats(self, consistency: Consistency = MINIMIZE_LATENCY) -> Stats:
        self._token_position(consistency)
        since = self._now() - DAY_US
        return self.storage.read_only(lambda tx: Stats(tx.totals(None), tx.totals(since)))

    def recount(self) -> list[CounterFix]:
        """Counters as the rows say, except that users being deleted keep
        zero: their job has yet to remove the rows."""

        def run(tx: Tx) -> list[CounterFix]:
            fixes = tx.recount()
            deleting = set(tx.zero_deleting_counters())
            return [fix for fix in fixes if fix.user_id not in deleting]

        return self.storage.read_write(run)


def _unless_deleting(tx: Tx, user_id: str, read: Callable[..., list[T]], *args: object) -> list[T]:
    """A list of ``user_id``'s: empty while their deletion is in progress."""
    return [] if tx.deleting((user_id,)) else read(user_id, *args)
