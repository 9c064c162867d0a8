"""A row of the load bench's table (bench/run.py): what to send, with which
generator, what every call must return and the ratio to the floor it must
reach. A module of further rows has a ``scenarios()`` function returning
them and is named in ``SCENARIO_MODULES`` in bench/run.py."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from google.protobuf.message import Message

from harness import ServerProcess

SVC = "/socialgraph.v1.SocialGraphService/"
HEALTH = "/grpc.health.v1.Health/Check"

# Which floor a generator's ratios are taken against (the same generator's).
FLOOR_OF = {"h2load": "h2load", "h2load-pairs": "h2load", "ghz": "ghz"}


@dataclass(frozen=True)
class Context:
    """What a row's ``request`` may use: the bench's arguments (``args.quick``,
    ``args.pg_url``, ``args.schema``...), the running server (``server.address``)
    and ``data``, the ids bench/run.py's setup_data read from the seeded graph.
    ``state`` is for a module's own setup, shared by its rows on one server."""

    args: argparse.Namespace
    server: ServerProcess
    data: dict[str, Any]
    state: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SideLoad:
    """Unrelated calls one client sends, one at a time at most every
    ``pace`` seconds, alone for the row's duration just before the row and
    then while it runs: the p99 of those during the row, as a multiple of
    their p99 alone, must be at most ``target``. The client cycles through
    ``methods`` with the same request (Follow and Unfollow read the same
    body). No method may be one of the row's: the row's verification leaves
    the side calls out."""

    name: str
    methods: tuple[str, ...]
    request: Callable[[Context], Message]
    target: float
    pace: float = 0.01


@dataclass(frozen=True)
class Scenario:
    """One row. ``request`` builds the request message(s) from the context,
    just before the row runs:

    - generator ``h2load``: one message, sent as is by every request;
    - ``h2load-pairs``: a list; one h2load process (1 connection, 1 stream)
      per message, each cycling through ``methods`` with that same message;
    - ``ghz``: a list, sent round-robin, one element per request (ghz
      measures a probe on the second half and the run on at most the first,
      so a list of writes never repeats one).

    Every call must end with ``expect`` in the server's
    ``socialgraph_rpcs_total``; ``target`` is the least ratio to the same
    generator's Health/Check floor (None: measured, not judged).
    ``every_server``: also run on the later ``--workers`` servers.
    ``alongside``: unrelated calls whose latency the row must not ruin, each
    side load on a client of its own, all at once."""

    name: str
    methods: tuple[str, ...]
    request: Callable[[Context], Message | Sequence[Message]]
    generator: str = "h2load"
    expect: str = "OK"
    target: float | None = None
    every_server: bool = False
    alongside: tuple[SideLoad, ...] = ()

    def __post_init__(self) -> None:
        if self.generator not in FLOOR_OF:
            raise ValueError(f"{self.name}: generator {self.generator!r} is none of {sorted(FLOOR_OF)}")
        for side in self.alongside:
            if set(side.methods) & set(self.methods):
                raise ValueError(f"{self.name}: a method of the side load {side.name!r} is one of the row's")
