"""The named races, on every backend: many threads, one transaction each,
and the invariants still hold afterwards (C3, C6, I1, I2, I4)."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from ratelimit import InProcessLimiter, parse_windows
from server.rules import ConnectionState, Graph, GraphError, Policy
from storage import open_storage
from storage.migrate import upgrade

from .support import BACKENDS, new_user, temporary_database

LIMIT = 3
THREADS = 8


@pytest.fixture(scope="module", params=BACKENDS)
def graph(request, tmp_path_factory):
    with temporary_database(request.param, tmp_path_factory.mktemp("races")) as url:
        storage = open_storage(url, pool_size=THREADS)
        upgrade(storage)
        yield Graph(storage, InProcessLimiter(parse_windows("100000/1h")), Policy(connection_limit=LIMIT))
        storage.close()


def race(*calls):
    """Runs the calls at the same instant; returns each result or GraphError."""
    barrier = threading.Barrier(len(calls))

    def run(call):
        barrier.wait()
        try:
            return call()
        except GraphError as error:
            return error

    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(run, calls))


def test_crossing_requests_connect_exactly_once(graph):
    for _ in range(10):
        a, b = new_user(), new_user()
        results = race(
            lambda: graph.send_connection_request(a, b, ""),
            lambda: graph.send_connection_request(b, a, ""),
        )
        states = sorted(r.state for r in results)
        assert states == [ConnectionState.PENDING, ConnectionState.CONNECTED]
        rel = graph.get_relationship(a, b)
        assert rel.connected and not rel.outgoing_request_pending and not rel.incoming_request_pending
        assert rel.following and rel.followed_by
        [ca, cb] = graph.get_counts([a, b])
        assert (ca.connections, cb.connections, ca.incoming_requests, ca.outgoing_requests) == (1, 1, 0, 0)
    assert graph.recount() == []


def test_acceptances_racing_toward_the_limit_stop_at_it(graph):
    popular = new_user()
    requesters = [new_user() for _ in range(THREADS)]
    for requester in requesters:
        graph.send_connection_request(requester, popular, "")
    results = race(*(lambda r=r: graph.accept_connection_request(popular, r) for r in requesters))
    accepted = [r for r in results if isinstance(r, int)]
    refused = [r for r in results if isinstance(r, GraphError)]
    assert len(accepted) == LIMIT
    assert {e.reason for e in refused} == {"CONNECTION_LIMIT_REACHED"}
    assert graph.get_counts([popular])[0].connections == LIMIT
    assert graph.get_counts([popular])[0].incoming_requests == THREADS - LIMIT
    assert graph.recount() == []


def test_requests_racing_toward_a_full_user_stop_at_the_limit(graph):
    popular = new_user()
    # popular has pending requests out to everyone; each reply connects (C3).
    others = [new_user() for _ in range(THREADS)]
    for other in others:
        graph.send_connection_request(popular, other, "")
    results = race(*(lambda o=o: graph.send_connection_request(o, popular, "") for o in others))
    connected = [r for r in results if not isinstance(r, GraphError)]
    assert len(connected) == LIMIT
    assert all(r.state == ConnectionState.CONNECTED for r in connected)
    assert graph.get_counts([popular])[0].connections == LIMIT
    assert graph.recount() == []


def test_block_racing_follows_requests_and_accepts_leaves_no_edge(graph):
    for _ in range(10):
        a, b = new_user(), new_user()
        graph.send_connection_request(b, a, "")
        race(
            lambda: graph.follow(a, b),
            lambda: graph.follow(b, a),
            lambda: graph.accept_connection_request(a, b),
            lambda: graph.send_connection_request(a, b, ""),
            lambda: graph.block(a, b, ""),
        )
        rel = graph.get_relationship(a, b)
        assert rel.blocking
        assert not (rel.following or rel.followed_by or rel.connected)
        assert not (rel.outgoing_request_pending or rel.incoming_request_pending)
    assert graph.recount() == []


def test_concurrent_follows_of_one_user_keep_the_counter_exact(graph):
    star = new_user()
    fans = [new_user() for _ in range(40)]
    with ThreadPoolExecutor(THREADS) as pool:
        list(pool.map(lambda fan: graph.follow(fan, star), fans))
        list(pool.map(lambda fan: graph.follow(fan, star), fans))  # repeats change nothing
        list(pool.map(lambda fan: graph.unfollow(fan, star), fans[:10]))
    assert graph.get_counts([star])[0].followers == 30
    assert graph.recount() == []
