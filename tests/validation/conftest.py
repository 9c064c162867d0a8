"""Fixtures shared by the tests in this package."""

from __future__ import annotations

import pytest

from socialgraph.v1 import common_pb2 as cpb

from ..support import new_user
from .calls import (
    Ctx,
)


@pytest.fixture
def ctx(client) -> Ctx:
    mod = new_user()
    client.upsert(mod, role=cpb.ROLE_MODERATOR)
    return Ctx(client, new_user(), new_user(), mod)
