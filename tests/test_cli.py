"""The ``socialgraph`` console script as a subprocess: migrate, recount, and
refusing bad configuration."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import sqlalchemy as sa

from harness import clean_env, free_port, run_socialgraph
from ratelimit import InProcessLimiter, parse_windows
from server.rules import Graph, Policy
from storage import open_storage
from storage.migrate import head, upgrade

from .support import new_user, temporary_database

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = 60  # seconds any one command may take
TABLES = {"users", "follows", "connections", "connection_requests", "blocks", "user_counters"}


def run(*args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = TIMEOUT):
    """Runs ``socialgraph ARGS`` to completion in a clean environment (killed after ``timeout``)."""
    return run_socialgraph(*args, cwd=cwd, env=clean_env() if env is None else env, timeout=timeout)


def table_names(url: str) -> set[str]:
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        return set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()


# -------------------------------------------------------------------- migrate


def check_migrate(url: str, cwd: Path) -> None:
    revision = head()
    assert revision

    first = run("migrate", "--database-url", url, cwd=cwd)
    assert first.returncode == 0, first.stderr
    assert re.search(rf"schema at revision {re.escape(revision)}\b", first.stdout), first.stdout
    assert "(was empty)" in first.stdout, first.stdout
    assert table_names(url) >= TABLES

    second = run("migrate", "--database-url", url, cwd=cwd)
    assert second.returncode == 0, second.stderr
    assert second.stdout.strip() == f"schema at revision {revision}", second.stdout
    assert table_names(url) >= TABLES


def test_migrate_creates_the_sqlite_schema(tmp_path):
    url = f"sqlite:///{tmp_path}/migrate.db"
    check_migrate(url, tmp_path)
    assert (tmp_path / "migrate.db").exists()


def test_migrate_reads_the_database_url_from_the_environment(tmp_path):
    url = f"sqlite:///{tmp_path}/from-env.db"
    result = run("migrate", cwd=tmp_path, env=clean_env(SOCIALGRAPH_DATABASE_URL=url))
    assert result.returncode == 0, result.stderr
    assert "(was empty)" in result.stdout
    assert table_names(url) >= TABLES
    # Not the default ./socialgraph.db.
    assert not (tmp_path / "socialgraph.db").exists()


@pytest.mark.postgres
def test_migrate_creates_the_postgres_schema(tmp_path):
    with temporary_database("postgres", tmp_path) as url:
        check_migrate(url, tmp_path)


def test_migrate_refuses_an_unsupported_database_url(tmp_path):
    # Bad configuration like any other: exit 2 and a one-line reason, no traceback.
    result = run("migrate", "--database-url", "mysql://127.0.0.1/x", cwd=tmp_path)
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert "mysql" in result.stderr
    assert "Traceback" not in result.stderr, result.stderr


# -------------------------------------------------------------------- recount


def make_graph(url: str):
    storage = open_storage(url, pool_size=2)
    upgrade(storage)
    return storage, Graph(storage, InProcessLimiter(parse_windows("1000/1h")), Policy())


def counters(storage, user_id: str) -> dict[str, int]:
    with storage.engine.connect() as conn:
        row = conn.execute(
            sa.text("SELECT * FROM user_counters WHERE user_id = :u"), {"u": user_id}
        ).mappings().one()
    return dict(row)


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_recount_fixes_a_corrupted_counter(backend, tmp_path):
    with temporary_database(backend, tmp_path) as url:
        storage, graph = make_graph(url)
        try:
            a, b, c = new_user(), new_user(), new_user()
            graph.follow(a, b)
            graph.follow(c, b)
            graph.send_connection_request(a, c, "hi")  # a follows c (auto-follow), request pending
            graph.block(b, new_user(), "")
            assert counters(storage, b)["followers"] == 2
            assert counters(storage, a)["following"] == 2

            # Nothing to fix yet.
            clean = run("recount", "--database-url", url, cwd=tmp_path)
            assert clean.returncode == 0, clean.stderr
            assert clean.stdout.strip().splitlines()[-1] == "recount: 0 counter(s) fixed", clean.stdout

            with storage.engine.begin() as conn:
                conn.execute(sa.text("UPDATE user_counters SET followers = 99 WHERE user_id = :u"), {"u": b})
                conn.execute(sa.text("UPDATE user_counters SET outgoing_requests = 5 WHERE user_id = :u"), {"u": a})
            assert counters(storage, b)["followers"] == 99
            version = counters(storage, b)["version"]

            fixed = run("recount", "--database-url", url, cwd=tmp_path)
            assert fixed.returncode == 0, fixed.stderr
            lines = fixed.stdout.strip().splitlines()
            assert f"{b} followers: 99 -> 2" in lines, fixed.stdout
            assert f"{a} outgoing_requests: 5 -> 1" in lines, fixed.stdout
            assert lines[-1] == "recount: 2 counter(s) fixed", fixed.stdout

            again = run("recount", "--database-url", url, cwd=tmp_path)
            assert again.returncode == 0, again.stderr
            assert again.stdout.strip().splitlines() == ["recount: 0 counter(s) fixed"], again.stdout

            after_b, after_a = counters(storage, b), counters(storage, a)
            assert after_b["followers"] == 2
            assert after_b["version"] > version  # caches can tell the row changed
            assert after_a["outgoing_requests"] == 1
            assert after_a["following"] == 2
            [counts_b] = graph.get_counts([b])
            assert counts_b.followers == 2
        finally:
            storage.close()


def test_recount_recreates_a_missing_counter_row(tmp_path):
    url = f"sqlite:///{tmp_path}/missing.db"
    storage, graph = make_graph(url)
    try:
        a, b = new_user(), new_user()
        graph.follow(a, b)
        with storage.engine.begin() as conn:
            conn.execute(sa.text("DELETE FROM user_counters WHERE user_id = :u"), {"u": b})
        result = run("recount", "--database-url", url, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        assert f"{b} followers: 0 -> 1" in result.stdout.splitlines(), result.stdout
        assert result.stdout.strip().splitlines()[-1] == "recount: 1 counter(s) fixed"
        assert counters(storage, b)["followers"] == 1
    finally:
        storage.close()


def test_recount_on_an_empty_database_migrates_and_fixes_nothing(tmp_path):
    url = f"sqlite:///{tmp_path}/empty.db"
    result = run("recount", "--database-url", url, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines() == ["recount: 0 counter(s) fixed"]


# ------------------------------------------------------ bad configuration


def serve_with_bad_config(tmp_path, *flags: str, **env: str):
    """``serve`` with configuration that must be refused before it listens.
    A valid port and database are given, so a service that does not refuse
    would start serving; the timeout then fails the test."""
    port = free_port()
    return run(
        "serve",
        "--listen", f"127.0.0.1:{port}",
        "--database-url", f"sqlite:///{tmp_path}/bad.db",
        *flags,
        cwd=tmp_path,
        env=clean_env(**env),
        timeout=20,
    )


@pytest.mark.parametrize(
    "flags, env, pattern",
    [
        ((), {"SOCIALGRAPH_RATE_LIMITS": "garbage"}, r"(?i)rate[_-]limits"),
        (("--rate-limits", "20/1h,zero"), {}, r"(?i)rate[_-]limits"),
        (("--connection-limit", "0"), {}, r"(?i)connection[_-]limit"),
        ((), {"SOCIALGRAPH_CONNECTION_LIMIT": "0"}, r"(?i)connection[_-]limit"),
        ((), {"SOCIALGRAPH_CONNECTION_LIMIT": "lots"}, r"SOCIALGRAPH_CONNECTION_LIMIT"),
        (("--connection-limit", "lots"), {}, r"--connection-limit"),
        ((), {"SOCIALGRAPH_AUTO_FOLLOW": "perhaps"}, r"SOCIALGRAPH_AUTO_FOLLOW"),
        (("--auto-follow", "perhaps"), {}, r"--auto-follow"),
        (("--threads", "0"), {}, r"(?i)threads"),
    ],
)
def test_bad_configuration_exits_2_naming_the_setting(tmp_path, flags, env, pattern):
    result = serve_with_bad_config(tmp_path, *flags, **env)
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert re.search(pattern, result.stderr), result.stderr
    assert "Traceback" not in result.stderr, result.stderr


def test_bad_listen_address_exits_2_naming_the_setting(tmp_path):
    result = run(
        "serve",
        "--listen", "127.0.0.1",
        "--database-url", f"sqlite:///{tmp_path}/bad.db",
        cwd=tmp_path,
        timeout=20,
    )
    assert result.returncode == 2, result.stderr
    assert "listen" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("command", ["serve", "migrate"])
def test_bad_log_level_exits_2_naming_the_setting(tmp_path, command):
    port = free_port()
    flags = ("--listen", f"127.0.0.1:{port}") if command == "serve" else ()
    result = run(
        command,
        *flags,
        "--database-url", f"sqlite:///{tmp_path}/bad.db",
        cwd=tmp_path,
        env=clean_env(SOCIALGRAPH_LOG_LEVEL="LOUD"),
        timeout=20,
    )
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert re.search(r"(?i)log[_-]level", result.stderr), result.stderr
    assert "Traceback" not in result.stderr, result.stderr
