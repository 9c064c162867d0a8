"""Model-based test: random operations on a few users go to the real service
(through gRPC, on every backend) and to the reference model in ``model.py``;
every answer must agree, and after every step so must every relationship and
every counter, and the event log folded into a graph must be the model's
graph."""

from __future__ import annotations

import contextlib
import uuid

import grpc
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule, run_state_machine_as_test

from cache import cached_readers, redis_client
from ratelimit import InProcessLimiter, parse_windows
from server.rules import EventLog, Graph, Policy
from server.rules.graph import now_us
from socialgraph.v1 import admin_pb2 as apb
from socialgraph.v1 import common_pb2
from socialgraph.v1 import social_graph_pb2 as pb
from storage import open_storage
from storage.types import EventKind

from .model import ADMIN, MEMBER, MODERATOR, Model
from .support import REDIS_URL, error_info, new_user, redis_reachable, require, serving

USERS = 3
# Ordered pairs of user indexes: mostly two users, sometimes one user twice.
PAIRS = [(i, j) for i in range(USERS) for j in range(USERS) if i != j] * 3 + [(i, i) for i in range(USERS)]
CONNECTION_LIMIT = 2
RATE_LIMIT = 3

SHORT = settings(
    max_examples=30,
    stateful_step_count=40,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
LONG = settings(SHORT, max_examples=300, stateful_step_count=50)

# Edge operations twice as likely as the account-wide ones.
OPERATIONS = [
    *["follow", "unfollow", "remove_follower", "send", "accept", "decline", "cancel"] * 2,
    *["remove_connection", "block", "unblock"] * 2,
    "set_role",
    "delete_user",
]


# The model's limits, for this module's server (overriding tests/conftest.py).
@pytest.fixture(scope="module")
def policy() -> Policy:
    return Policy(connection_limit=CONNECTION_LIMIT)


@pytest.fixture(scope="module")
def limiter():
    return InProcessLimiter(parse_windows(f"{RATE_LIMIT}/1h"))


@pytest.fixture(scope="module", params=["in-process caches", pytest.param("redis caches", marks=pytest.mark.redis)])
def graph(request, storage, limiter, policy) -> Graph:
    """The embedded wiring, and the production one with the counter and
    relationship caches in Redis: every answer must be the model's either way."""
    if request.param == "in-process caches":
        return Graph(storage, limiter, policy, **cached_readers(storage))
    require("Redis", redis_reachable())
    client = redis_client.connect(REDIS_URL, timeout=1.0)
    prefix = f"test-{uuid.uuid4().hex[:12]}"
    return Graph(storage, limiter, policy, **cached_readers(storage, client, ttl_seconds=120, prefix=prefix))


@pytest.fixture(scope="module")
def grpc_interceptors(graph):
    """No interceptors; depending on ``graph`` makes pytest-grpc build a new
    server for each wiring (a stopped grpc.Server cannot be started again)."""
    return None


def outcome(call):
    """The service's answer in the model's terms."""
    try:
        return ("OK", call())
    except grpc.RpcError as error:
        info = error_info(error)
        if info.reason == "CONNECTION_LIMIT_REACHED":
            return (error.code().name, info.reason, info.metadata["user_id"])
        return (error.code().name, info.reason)


def fold(events) -> dict[str, set]:
    """The graph a consumer builds from the events alone. Every event must
    be a change: an addition of an edge that is absent, a removal of one
    that is present (so a consumer can apply each to exactly one edge)."""
    graph: dict[str, set] = {"follows": set(), "requests": set(), "connections": set(), "blocks": set()}

    def add(kind, edge):
        assert edge not in graph[kind], (kind, edge)
        graph[kind].add(edge)

    def remove(kind, edge):
        assert edge in graph[kind], (kind, edge)
        graph[kind].remove(edge)

    for event in events:
        a, s = event.actor_id, event.subject_id
        match event.kind:
            case EventKind.FOLLOWED:
                add("follows", (a, s))
            case EventKind.UNFOLLOWED:
                remove("follows", (a, s))
            case EventKind.FOLLOWER_REMOVED:
                remove("follows", (s, a))
            case EventKind.CONNECTION_REQUESTED:
                add("requests", (a, s))
            case EventKind.CONNECTION_REQUEST_CANCELLED:
                remove("requests", (a, s))
            case EventKind.CONNECTION_REQUEST_DECLINED:
                remove("requests", (s, a))
            case EventKind.CONNECTED:
                remove("requests", (s, a) if (s, a) in graph["requests"] else (a, s))
                add("connections", frozenset((a, s)))
            case EventKind.CONNECTION_REMOVED:
                remove("connections", frozenset((a, s)))
            case EventKind.BLOCKED:
                add("blocks", (a, s))
            case EventKind.UNBLOCKED:
                remove("blocks", (a, s))
    return graph


def make_machine(storage, *clients):
    """Writes go to any of ``clients`` (server processes over one database);
    every client's reads, with the last write's consistency token, must
    agree with the model, and so must the event log of ``storage``."""
    log = EventLog(storage, now_us)

    class Machine(RuleBasedStateMachine):
        """Fresh users for every example, so examples share the database safely."""

        @initialize()
        def start(self):
            self.users = [new_user() for _ in range(USERS)]
            self.model = Model(connection_limit=CONNECTION_LIMIT, rate_limit=RATE_LIMIT)
            self.consistency = common_pb2.Consistency()
            self.start_position = log.start("")

        def check(self, call, expected):
            actual = outcome(call)
            if expected[0] != "OK":
                assert actual == expected, (actual, expected)
                return
            assert actual[0] == "OK", (actual, expected)
            response = actual[1]
            self.consistency = common_pb2.Consistency(at_least_as_fresh=response.consistency_token)
            got = {}
            for name in expected[1]:
                value = getattr(response, name)
                if name == "state":
                    value = pb.ConnectionState.Name(value).removeprefix("CONNECTION_STATE_")
                got[name] = value
            assert got == expected[1], (got, expected)

        # One rule drawing the operation, so every operation stays equally
        # likely in every example (separate rules get switched off per example).
        @rule(
            op=st.sampled_from(OPERATIONS),
            pair=st.sampled_from(PAIRS),
            role=st.sampled_from([MEMBER, MODERATOR, ADMIN]),
            via=st.sampled_from(clients),
        )
        def step(self, op, pair, role, via):
            a, b = self.users[pair[0]], self.users[pair[1]]
            call, expected = getattr(self, op)(via, a, b, role)
            self.check(call, expected)

        def follow(self, client, a, b, _):
            return lambda: client.follow(a, b), self.model.follow(a, b)

        def unfollow(self, client, a, b, _):
            request = pb.UnfollowRequest(follower_id=a, followee_id=b)
            return lambda: client.graph.Unfollow(request), self.model.unfollow(a, b)

        def remove_follower(self, client, a, b, _):
            request = pb.RemoveFollowerRequest(user_id=a, follower_id=b)
            return lambda: client.graph.RemoveFollower(request), self.model.remove_follower(a, b)

        def send(self, client, a, b, _):
            return lambda: client.send(a, b), self.model.send(a, b)

        def accept(self, client, a, b, _):
            return lambda: client.accept(a, b), self.model.accept(a, b)

        def decline(self, client, a, b, _):
            request = pb.DeclineConnectionRequestRequest(recipient_id=a, requester_id=b)
            return lambda: client.graph.DeclineConnectionRequest(request), self.model.decline(a, b)

        def cancel(self, client, a, b, _):
            request = pb.CancelConnectionRequestRequest(requester_id=a, recipient_id=b)
            return lambda: client.graph.CancelConnectionRequest(request), self.model.cancel(a, b)

        def remove_connection(self, client, a, b, _):
            request = pb.RemoveConnectionRequest(user_id=a, other_user_id=b)
            return lambda: client.graph.RemoveConnection(request), self.model.remove_connection(a, b)

        def block(self, client, a, b, _):
            return lambda: client.block(a, b), self.model.block(a, b)

        def unblock(self, client, a, b, _):
            request = pb.UnblockRequest(blocker_id=a, blocked_id=b)
            return lambda: client.graph.Unblock(request), self.model.unblock(a, b)

        def set_role(self, client, a, _b, role):
            request = apb.UpsertUserRequest(user=common_pb2.User(user_id=a, role=role))
            return lambda: client.admin.UpsertUser(request), self.model.upsert(a, role)

        def delete_user(self, client, a, _b, _):
            request = apb.DeleteUserRequest(user_id=a)
            return lambda: client.admin.DeleteUser(request), self.model.delete_user(a)

        @invariant()
        def relationships_and_counts_agree(self):
            if not hasattr(self, "model"):
                return
            for client in clients:
                for me in self.users:
                    others = [u for u in self.users if u != me]
                    response = client.graph.BatchGetRelationships(
                        pb.BatchGetRelationshipsRequest(user_id=me, other_user_ids=others, consistency=self.consistency)
                    )
                    for them, rel in zip(others, response.relationships, strict=False):
                        actual = {name: getattr(rel, name) for name in self.model.relationship(me, them)}
                        assert actual == self.model.relationship(me, them), (me, them)
                counted = client.graph.GetCounts(
                    pb.GetCountsRequest(user_ids=self.users, consistency=self.consistency)
                ).counts
                for counts in counted:
                    expected = self.model.counts(counts.user_id)
                    assert {name: getattr(counts, name) for name in expected} == expected, counts.user_id

        @invariant()
        def the_event_log_folds_into_the_model(self):
            if not hasattr(self, "model"):
                return
            log.sequence()
            events, position = [], self.start_position
            while True:
                found = log.read(position, (), self.users)
                events.extend(found.events)
                if found.through >= found.head:
                    break
                position = found.through
            assert [e.seq for e in events] == sorted({e.seq for e in events})
            graph = fold(events)
            model = self.model
            assert graph["follows"] == model.follows
            assert graph["requests"] == model.requests
            assert graph["blocks"] == model.blocks
            assert graph["connections"] == {
                frozenset((a, b)) for a in self.users for b in self.users if a < b and model.connected(a, b)
            }

    return Machine


def test_service_behaves_like_the_model(client, storage, long_run):
    run_state_machine_as_test(lambda: make_machine(storage, client)(), settings=LONG if long_run else SHORT)


def test_two_processes_behave_like_the_model(storage, database_url, limiter, policy, long_run):
    """Two servers over one database, each with its own storage and
    in-process caches and no Redis (the limiter is shared, as Redis would
    share it): writes go to either, and reads on both with the last write's
    token agree with the model, and so does the event log of both.
    (``storage`` has migrated the database.)"""
    opened = [open_storage(database_url, pool_size=4) for _ in range(2)]
    try:
        with contextlib.ExitStack() as stack:
            clients = [
                stack.enter_context(serving(Graph(s, limiter, policy, **cached_readers(s)))) for s in opened
            ]
            run_state_machine_as_test(lambda: make_machine(storage, *clients)(), settings=LONG if long_run else SHORT)
    finally:
        for s in opened:
            s.close()
