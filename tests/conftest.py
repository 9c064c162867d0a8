"""Fixtures for the contract suite: every test module that uses ``client``
runs once per storage backend (SQLite, and PostgreSQL marked ``postgres``)
through a real gRPC server from pytest-grpc."""

from __future__ import annotations

import logging

import pytest

from cache import cached_readers
from ratelimit import InProcessLimiter, parse_windows
from server.app import add_services
from server.rules import Graph, Policy
from storage import open_storage
from storage.migrate import upgrade

from .support import BACKENDS, Client, new_user, temporary_database


def pytest_addoption(parser):
    parser.addoption(
        "--long",
        action="store_true",
        default=False,
        help="run the model-based, stress, fault and hostile-input tests with their long budgets",
    )


@pytest.fixture(scope="session", autouse=True)
def quiet_after_the_session():
    """Background timers (the counter cache's repair) may still log while the
    interpreter exits; keep that out of the runner's closing lines."""
    yield
    logging.disable(logging.CRITICAL)


@pytest.fixture(scope="session")
def long_run(request) -> bool:
    """True under ``--long``: tests with a budget use the long one."""
    return request.config.getoption("--long")


# Small enough to reach in a test; the limiter is generous so that only the
# limiter's own tests meet it.
CONNECTION_LIMIT = 5
RATE_LIMITS = "1000/1h"


@pytest.fixture(scope="module", params=BACKENDS)
def backend(request) -> str:
    return request.param


@pytest.fixture(scope="module")
def database_url(backend, tmp_path_factory):
    with temporary_database(backend, tmp_path_factory.mktemp(backend)) as url:
        yield url


@pytest.fixture(scope="module")
def storage(database_url):
    storage = open_storage(database_url, pool_size=8)
    upgrade(storage)
    yield storage
    storage.close()


@pytest.fixture(scope="module")
def policy() -> Policy:
    return Policy(connection_limit=CONNECTION_LIMIT)


@pytest.fixture(scope="module")
def limiter():
    return InProcessLimiter(parse_windows(RATE_LIMITS))


@pytest.fixture(scope="module")
def graph(storage, limiter, policy) -> Graph:
    """Wired as the embedded server is: in-process counter and relationship caches."""
    return Graph(storage, limiter, policy, **cached_readers(storage))


# pytest-grpc's hooks: the servicer under test is the whole graph.


@pytest.fixture(scope="module")
def grpc_servicer(graph):
    return graph


@pytest.fixture(scope="module")
def grpc_add_to_server():
    return lambda graph, server: add_services(server, graph)


@pytest.fixture(scope="module")
def grpc_stub_cls():
    return Client


@pytest.fixture(scope="module")
def client(grpc_stub) -> Client:
    return grpc_stub


@pytest.fixture
def user():
    """Makes fresh user ids, so tests sharing a database never meet."""
    return new_user


@pytest.fixture(scope="module")
def grpc_interceptors(backend):
    """No interceptors. Depending on ``backend`` makes pytest-grpc build a new
    server for each backend (a stopped grpc.Server cannot be started again)."""
    return None
