"""Connections: requests, acceptance and the connection limit, C1-C8."""

from __future__ import annotations

from ratelimit.base import Decision, admit
from storage.types import Cause, ConnectionRequest, Counts, EventKind, Pair, Tx

from .core import GraphCore, _distinct, _emit, _lock_present, _refuse_if_blocked, new_id
from .errors import ConnectionLimitReached, NotFound, RateLimited, Reason
from .policy import ConnectionState, SendResult


class ConnectionRules(GraphCore):
    # ------------------------------------------------------------ connections

    def send_connection_request(self, requester_id: str, recipient_id: str, message: str) -> SendResult:
        """C1-C7: the limiter first (what it writes to the database, first
        thing in the transaction), then the rules, in one transaction; the
        limiter slot is given back when the call creates nothing."""
        _distinct("recipient_id", requester_id, recipient_id)
        request_id = new_id()
        decision, limit_in_tx = admit(self.limiter, requester_id, request_id)
        _refuse_if_limited(requester_id, decision)

        def run(tx: Tx) -> SendResult:
            if limit_in_tx is not None:
                _refuse_if_limited(requester_id, limit_in_tx(tx))
            counts = _lock_present(tx, (requester_id, recipient_id))
            pair = tx.pair(requester_id, recipient_id)
            _refuse_if_blocked(pair)
            if pair.connected_since is not None:
                return SendResult(ConnectionState.CONNECTED, False, connected_us=pair.connected_since)
            if pair.outgoing is not None:
                return SendResult(ConnectionState.PENDING, False, request=pair.outgoing)
            self._check_limit(counts, requester_id, recipient_id)
            now = self._now()
            if pair.incoming is not None:
                # C3: crossing requests accept each other.
                tx.delete_request(recipient_id, requester_id)
                self._connect(tx, requester_id, recipient_id, now, pair, requester_id, _CROSSING, pair.incoming)
                return SendResult(ConnectionState.CONNECTED, True, connected_us=now)
            request = ConnectionRequest(request_id, requester_id, recipient_id, message, now)
            tx.insert_request(request)
            _emit(
                tx, EventKind.CONNECTION_REQUESTED, requester_id, recipient_id, now,
                request={"request_id": request_id, "message": message},
            )
            if self.policy.auto_follow and pair.following_since is None:
                tx.insert_follow(requester_id, recipient_id, now)
                _emit(tx, EventKind.FOLLOWED, requester_id, recipient_id, now, Cause.AUTO_FOLLOW)
            return SendResult(ConnectionState.PENDING, True, request=request)

        try:
            result = self.storage.read_write(run)
        except RateLimited:
            raise  # refused in the transaction: nothing was recorded
        except BaseException:
            self.limiter.release(requester_id, request_id)
            raise
        if not result.created:
            self.limiter.release(requester_id, request_id)
        return result

    def accept_connection_request(self, recipient_id: str, requester_id: str) -> int:
        """C2, C4, C6. Returns connected_us; a retry after success returns the same."""
        _distinct("requester_id", recipient_id, requester_id)

        def run(tx: Tx) -> int:
            counts = tx.lock_users((recipient_id, requester_id))
            # A user being deleted has no request to accept.
            pair = tx.pair(requester_id, recipient_id) if not tx.deleting(counts) else _NO_PAIR
            if pair.connected_since is not None:
                return pair.connected_since
            if pair.outgoing is None:
                raise NotFound(
                    Reason.REQUEST_NOT_FOUND,
                    f"no pending connection request from {requester_id} to {recipient_id}",
                )
            self._check_limit(counts, recipient_id, requester_id)
            now = self._now()
            tx.delete_request(requester_id, recipient_id)
            self._connect(tx, requester_id, recipient_id, now, pair, recipient_id, _ACCEPTED, pair.outgoing)
            return now

        return self.storage.read_write(run)

    def decline_connection_request(self, recipient_id: str, requester_id: str) -> bool:
        _distinct("requester_id", recipient_id, requester_id)
        return self._request_removal(
            (recipient_id, requester_id), requester_id, recipient_id, EventKind.CONNECTION_REQUEST_DECLINED
        )

    def cancel_connection_request(self, requester_id: str, recipient_id: str) -> bool:
        _distinct("recipient_id", requester_id, recipient_id)
        return self._request_removal(
            (requester_id, recipient_id), requester_id, recipient_id, EventKind.CONNECTION_REQUEST_CANCELLED
        )

    def remove_connection(self, user_id: str, other_id: str) -> bool:
        _distinct("other_user_id", user_id, other_id)
        return self._removal(
            (user_id, other_id),
            lambda tx: tx.delete_connection(user_id, other_id),
            EventKind.CONNECTION_REMOVED,
            user_id,
            other_id,
        )

    def _connect(
        self,
        tx: Tx,
        requester_id: str,
        recipient_id: str,
        now: int,
        pair: Pair,
        actor_id: str,
        via: int,
        request: ConnectionRequest,
    ) -> None:
        """Makes the connection; with auto-follow, the requester follows the
        recipient (from sending) and the recipient the requester (from
        accepting). ``pair`` is the state seen from the requester's side;
        ``actor_id`` connected them ``via`` accepting or crossing ``request``."""
        tx.insert_connection(requester_id, recipient_id, now)
        other_id = recipient_id if actor_id == requester_id else requester_id
        _emit(
            tx, EventKind.CONNECTED, actor_id, other_id, now,
            connected={"via": via, "request_id": request.request_id},
        )
        if self.policy.auto_follow:
            if pair.following_since is None:
                tx.insert_follow(requester_id, recipient_id, now)
                _emit(tx, EventKind.FOLLOWED, requester_id, recipient_id, now, Cause.AUTO_FOLLOW)
            if pair.followed_since is None:
                tx.insert_follow(recipient_id, requester_id, now)
                _emit(tx, EventKind.FOLLOWED, recipient_id, requester_id, now, Cause.AUTO_FOLLOW)

    def _check_limit(self, counts: dict[str, Counts], *user_ids: str) -> None:
        for user_id in user_ids:
            if counts[user_id].connections >= self.policy.connection_limit:
                raise ConnectionLimitReached(user_id, self.policy.connection_limit)

    def _request_removal(
        self, user_ids: tuple[str, ...], requester_id: str, recipient_id: str, kind: EventKind
    ) -> bool:
        """Declines (the recipient acts) or cancels (the requester acts)."""
        actor, subject = (
            (recipient_id, requester_id)
            if kind is EventKind.CONNECTION_REQUEST_DECLINED
            else (requester_id, recipient_id)
        )

        def run(tx: Tx) -> bool:
            if tx.deleting(tx.lock_users(user_ids)):
                return False
            request_id = tx.delete_request(requester_id, recipient_id)
            if request_id is None:
                return False
            _emit(tx, kind, actor, subject, self._now(), request={"request_id": request_id})
            return True

        return self.storage.read_write(run)


_ACCEPTED, _CROSSING = 1, 2  # socialgraph.v1.ConnectedVia
_NO_PAIR = Pair(None, None, None, None, None, None, False)


def _refuse_if_limited(requester_id: str, decision: Decision) -> None:
    if not decision.allowed:
        assert decision.window is not None
        raise RateLimited(requester_id, decision.window, decision.retry_after)
