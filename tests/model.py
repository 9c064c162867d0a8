"""A plain-Python reference model of the SPEC's rules, for the model-based
test. Each operation returns what the service must answer: ``("OK", fields)``
or ``(code, reason)``; ``user_id`` is added for CONNECTION_LIMIT_REACHED.
Ids are canonical; the model mirrors the documented order of checks:
self-relation, then the limiter, then the rules inside the transaction."""

from __future__ import annotations

from dataclasses import dataclass, field

MEMBER, MODERATOR, ADMIN = 1, 2, 3


def ok(**fields):
    return ("OK", fields)


SELF = ("INVALID_ARGUMENT", "SELF_RELATIONSHIP")
BLOCKED = ("PERMISSION_DENIED", "BLOCKED")


@dataclass
class Model:
    connection_limit: int
    rate_limit: int
    auto_follow: bool = True
    roles: dict[str, int] = field(default_factory=dict)
    follows: set[tuple[str, str]] = field(default_factory=set)
    connections: set[frozenset] = field(default_factory=set)
    requests: set[tuple[str, str]] = field(default_factory=set)
    blocks: set[tuple[str, str]] = field(default_factory=set)
    slots_used: dict[str, int] = field(default_factory=dict)

    # ---------------------------------------------------------------- queries

    def blocked_either(self, a, b) -> bool:
        return (a, b) in self.blocks or (b, a) in self.blocks

    def connected(self, a, b) -> bool:
        return frozenset((a, b)) in self.connections

    def connection_count(self, user) -> int:
        return sum(user in pair for pair in self.connections)

    def partners(self, user) -> set[str]:
        return {other for pair in self.connections if user in pair for other in pair if other != user}

    def relationship(self, me, them) -> dict:
        return {
            "following": (me, them) in self.follows,
            "followed_by": (them, me) in self.follows,
            "connected": self.connected(me, them),
            "outgoing_request_pending": (me, them) in self.requests,
            "incoming_request_pending": (them, me) in self.requests,
            "blocking": (me, them) in self.blocks,
            "blocked_by": (them, me) in self.blocks,
            "can_interact": not self.blocked_either(me, them),
            "mutual_connections_count": len(self.partners(me) & self.partners(them)),
        }

    def counts(self, user) -> dict:
        return {
            "followers": sum(b == user for _, b in self.follows),
            "following": sum(a == user for a, _ in self.follows),
            "connections": self.connection_count(user),
            "incoming_requests": sum(b == user for _, b in self.requests),
            "outgoing_requests": sum(a == user for a, _ in self.requests),
            "blocked": sum(a == user for a, _ in self.blocks),
        }

    # ---------------------------------------------------------------- follows

    def follow(self, a, b):
        if a == b:
            return SELF
        if (a, b) in self.follows:
            return ok(created=False)
        if self.blocked_either(a, b):
            return BLOCKED
        self.follows.add((a, b))
        return ok(created=True)

    def unfollow(self, a, b):
        if a == b:
            return SELF
        removed = (a, b) in self.follows
        self.follows.discard((a, b))
        return ok(removed=removed)

    def remove_follower(self, user, follower):
        return self.unfollow(follower, user)

    # ------------------------------------------------------------ connections

    def _limit(self, *users):
        for user in users:
            if self.connection_count(user) >= self.connection_limit:
                return ("RESOURCE_EXHAUSTED", "CONNECTION_LIMIT_REACHED", user)
        return None

    def _connect(self, requester, recipient):
        self.connections.add(frozenset((requester, recipient)))
        if self.auto_follow:
            self.follows.add((requester, recipient))
            self.follows.add((recipient, requester))

    def send(self, a, b):
        if a == b:
            return SELF
        if self.slots_used.get(a, 0) >= self.rate_limit:
            return ("RESOURCE_EXHAUSTED", "RATE_LIMITED")
        if self.blocked_either(a, b):
            return BLOCKED
        if self.connected(a, b):
            return ok(state="CONNECTED", created=False)
        if (a, b) in self.requests:
            return ok(state="PENDING", created=False)
        refused = self._limit(a, b)
        if refused:
            return refused
        self.slots_used[a] = self.slots_used.get(a, 0) + 1
        if (b, a) in self.requests:
            self.requests.discard((b, a))
            self._connect(a, b)
            return ok(state="CONNECTED", created=True)
        self.requests.add((a, b))
        if self.auto_follow:
            self.follows.add((a, b))
        return ok(state="PENDING", created=True)

    def accept(self, recipient, requester):
        if recipient == requester:
            return SELF
        if self.connected(recipient, requester):
            return ok()
        if (requester, recipient) not in self.requests:
            return ("NOT_FOUND", "REQUEST_NOT_FOUND")
        refused = self._limit(recipient, requester)
        if refused:
            return refused
        self.requests.discard((requester, recipient))
        self._connect(requester, recipient)
        return ok()

    def decline(self, recipient, requester):
        return self.cancel(requester, recipient)

    def cancel(self, requester, recipient):
        if requester == recipient:
            return SELF
        removed = (requester, recipient) in self.requests
        self.requests.discard((requester, recipient))
        return ok(removed=removed)

    def remove_connection(self, a, b):
        if a == b:
            return SELF
        removed = self.connected(a, b)
        self.connections.discard(frozenset((a, b)))
        return ok(removed=removed)

    # ----------------------------------------------------------------- blocks

    def block(self, a, b):
        if a == b:
            return SELF
        if (a, b) in self.blocks:
            return ok(created=False, removed_follows=0, removed_connections=0, removed_requests=0)
        if self.roles.get(b, MEMBER) != MEMBER:
            return ("PERMISSION_DENIED", "CANNOT_BLOCK_STAFF")
        follows = {(a, b), (b, a)} & self.follows
        requests = {(a, b), (b, a)} & self.requests
        connected = self.connected(a, b)
        self.follows -= follows
        self.requests -= requests
        self.connections.discard(frozenset((a, b)))
        self.blocks.add((a, b))
        return ok(
            created=True,
            removed_follows=len(follows),
            removed_connections=int(connected),
            removed_requests=len(requests),
        )

    def unblock(self, a, b):
        if a == b:
            return SELF
        removed = (a, b) in self.blocks
        self.blocks.discard((a, b))
        return ok(removed=removed)

    # ------------------------------------------------------------------ users

    def upsert(self, user, role):
        self.roles[user] = role
        if role != MEMBER:
            self.blocks = {(x, y) for x, y in self.blocks if y != user}
        return ok()

    def delete_user(self, user):
        follows = {edge for edge in self.follows if user in edge}
        connections = {pair for pair in self.connections if user in pair}
        requests = {edge for edge in self.requests if user in edge}
        blocks = {edge for edge in self.blocks if user in edge}
        self.follows -= follows
        self.connections -= connections
        self.requests -= requests
        self.blocks -= blocks
        self.roles.pop(user, None)
        return ok(
            removed_follows=len(follows),
            removed_connections=len(connections),
            removed_requests=len(requests),
            removed_blocks=len(blocks),
        )
