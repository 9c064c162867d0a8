"""Follows: F1-F4."""

from __future__ import annotations

from storage.types import EventKind, Tx

from .core import GraphCore, _distinct, _emit, _lock_present, _refuse_if_blocked


class FollowRules(GraphCore):
    # ---------------------------------------------------------------- follows

    def follow(self, follower_id: str, followee_id: str) -> tuple[bool, int]:
        """F1-F3. Returns (created, since_us)."""
        _distinct("followee_id", follower_id, followee_id)

        def run(tx: Tx) -> tuple[bool, int]:
            _lock_present(tx, (follower_id, followee_id))
            pair = tx.pair(follower_id, followee_id)
            if pair.following_since is not None:
                return False, pair.following_since
            _refuse_if_blocked(pair)
            now = self._now()
            tx.insert_follow(follower_id, followee_id, now)
            _emit(tx, EventKind.FOLLOWED, follower_id, followee_id, now)
            return True, now

        return self.storage.read_write(run)

    def unfollow(self, follower_id: str, followee_id: str) -> bool:
        _distinct("followee_id", follower_id, followee_id)
        return self._removal(
            (follower_id, followee_id),
            lambda tx: tx.delete_follow(follower_id, followee_id),
            EventKind.UNFOLLOWED,
            follower_id,
            followee_id,
        )

    def remove_follower(self, user_id: str, follower_id: str) -> bool:
        """F4: the followee removes a follower."""
        _distinct("follower_id", user_id, follower_id)
        return self._removal(
            (user_id, follower_id),
            lambda tx: tx.delete_follow(follower_id, user_id),
            EventKind.FOLLOWER_REMOVED,
            user_id,
            follower_id,
        )
