"""The ``socialgraph`` command: serve, migrate, recount."""

from __future__ import annotations

import argparse
import logging
import sys

from . import settings as config


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="socialgraph",
        description="SocialGraph: follows, connections and blocks over gRPC.",
        epilog="Every flag can also be set by the environment variable shown in its place.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    for name, help in (
        ("serve", "run the gRPC server (applies migrations first)"),
        ("migrate", "apply database migrations and exit"),
        ("recount", "recompute every counter from the edges and report what was fixed"),
    ):
        config.add_arguments(commands.add_parser(name, help=help), name)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = config.load(args)
    except ValueError as exc:
        print(f"socialgraph: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    if settings.log_level.upper() != "DEBUG":
        logging.getLogger("alembic").setLevel(logging.WARNING)
    return {"serve": _serve, "migrate": _migrate, "recount": _recount}[args.command](settings)


def _serve(settings: config.Settings) -> int:
    from .app import PortInUse, serve

    try:
        serve(settings)
    except PortInUse as exc:
        print(f"socialgraph: {exc}", file=sys.stderr)
        return 1
    return 0


def _migrate(settings: config.Settings) -> int:
    from storage import open_storage
    from storage.migrate import upgrade

    storage = open_storage(settings.database_url)
    before, after = upgrade(storage)
    storage.close()
    print(f"schema at revision {after}" + ("" if before == after else f" (was {before or 'empty'})"))
    return 0


def _recount(settings: config.Settings) -> int:
    from storage import open_storage
    from storage.migrate import upgrade

    from .app import make_graph

    storage = open_storage(settings.database_url)
    upgrade(storage)
    fixes = make_graph(settings, storage).recount()
    storage.close()
    for fix in fixes:
        print(f"{fix.user_id} {fix.column}: {fix.stored} -> {fix.actual}")
    print(f"recount: {len(fixes)} counter(s) fixed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
