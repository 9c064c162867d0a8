"""Fixtures shared by the tests in this package."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ratelimit import InProcessLimiter, parse_windows
from server.rules import Graph, Policy

from ..conftest import CONNECTION_LIMIT, RATE_LIMITS
from ..support import Client, serving


@pytest.fixture(scope="module")
def roomy_client(storage) -> Iterator[Client]:
    """Same database, a connection limit high enough for 11+ mutual connections."""
    graph = Graph(storage, InProcessLimiter(parse_windows(RATE_LIMITS)), Policy(connection_limit=100))
    with serving(graph) as client:
        yield client


@pytest.fixture(scope="module")
def no_follow_client(storage) -> Iterator[Client]:
    """Same database, auto-follow switched off."""
    policy = Policy(connection_limit=CONNECTION_LIMIT, auto_follow=False)
    graph = Graph(storage, InProcessLimiter(parse_windows(RATE_LIMITS)), policy)
    with serving(graph) as client:
        yield client
