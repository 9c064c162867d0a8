"""Blocks: B1-B6; a block and its cascade in one transaction."""

from __future__ import annotations

from storage.types import Block, Cause, EventKind, Removed, Tx

from .core import GraphCore, _distinct, _emit, _lock_present, new_id
from .errors import PermissionDenied, Reason
from .policy import BlockResult


class BlockRules(GraphCore):
    # ----------------------------------------------------------------- blocks

    def block(self, blocker_id: str, blocked_id: str, reason: str) -> BlockResult:
        """B1-B3, B6: the block and its cascade in one transaction."""
        _distinct("blocked_id", blocker_id, blocked_id)

        def run(tx: Tx) -> BlockResult:
            _lock_present(tx, (blocker_id, blocked_id))
            pair = tx.pair(blocker_id, blocked_id)
            if pair.blocking is not None:
                return BlockResult(pair.blocking, False, Removed())
            if tx.role_of(blocked_id).is_staff:
                raise PermissionDenied(
                    Reason.CANNOT_BLOCK_STAFF, "moderators and admins cannot be blocked"
                )
            # Remove only what the pair read found: each removal is a statement.
            now = self._now()
            follows = connections = requests = 0
            for follower, followee, since in (
                (blocker_id, blocked_id, pair.following_since),
                (blocked_id, blocker_id, pair.followed_since),
            ):
                if since is not None and tx.delete_follow(follower, followee):
                    follows += 1
                    _emit(tx, EventKind.UNFOLLOWED, follower, followee, now, Cause.BLOCK)
            if pair.connected_since is not None and tx.delete_connection(blocker_id, blocked_id):
                connections += 1
                _emit(tx, EventKind.CONNECTION_REMOVED, blocker_id, blocked_id, now, Cause.BLOCK)
            for request in (pair.outgoing, pair.incoming):
                if request is not None and tx.delete_request(request.requester_id, request.recipient_id):
                    requests += 1
                    _emit(
                        tx, EventKind.CONNECTION_REQUEST_CANCELLED, request.requester_id, request.recipient_id,
                        now, Cause.BLOCK, request={"request_id": request.request_id},
                    )
            block = Block(new_id(), blocker_id, blocked_id, reason, now)
            tx.insert_block(block)
            _emit(
                tx, EventKind.BLOCKED, blocker_id, blocked_id, now,
                block={"block_id": block.block_id, "reason": reason},
            )
            return BlockResult(block, True, Removed(follows=follows, connections=connections, requests=requests))

        return self.storage.read_write(run)

    def unblock(self, blocker_id: str, blocked_id: str) -> bool:
        """B5: restores nothing."""
        _distinct("blocked_id", blocker_id, blocked_id)
        return self._removal(
            (blocker_id, blocked_id),
            lambda tx: tx.delete_block(blocker_id, blocked_id),
            EventKind.UNBLOCKED,
            blocker_id,
            blocked_id,
        )
