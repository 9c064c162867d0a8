"""ghz drives the service for real: every config in loadtest/ and every ghz
command in the README, each cut to a few hundred requests, against a server
process; every request must succeed."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from .support import require, running_server, temporary_database

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

ROOT = Path(__file__).parent.parent
GHZ = os.environ.get("GHZ") or shutil.which("ghz") or str(ROOT / ".tools" / "bin" / "ghz")
CONFIGS = sorted((ROOT / "loadtest").glob("*.json"))
SMOKE_REQUESTS = 300


def readme_ghz_commands() -> list[list[str]]:
    """Every ghz command of the README's sh blocks, as argv."""
    commands = []
    for block in re.findall(r"```sh\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split(" #")[0].strip()
            if line.startswith("ghz "):
                commands.append(shlex.split(line))
    return commands


@pytest.fixture(scope="module")
def address(tmp_path_factory):
    """A server on PostgreSQL, as the configs are meant for (SQLite's one
    writer at a time can time out under 16 concurrent writes)."""
    require("ghz", os.access(GHZ, os.X_OK))
    with (
        temporary_database("postgres", tmp_path_factory.mktemp("ghz")) as url,
        running_server("--database-url", url) as (address, _),
    ):
        yield address


def smoke(argv: list[str], address: str) -> dict:
    """``argv`` (a ghz command) against ``address`` with SMOKE_REQUESTS
    requests; ghz's JSON report."""
    args = [arg for arg in argv[1:] if not re.fullmatch(r"127\.0\.0\.1:\d+", arg)]
    if "-n" in args:
        del args[args.index("-n") : args.index("-n") + 2]
    command = [GHZ, *args, "-n", str(SMOKE_REQUESTS), "-O", "json", address]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"{shlex.join(command)}: {result.stdout}{result.stderr}"
    return json.loads(result.stdout)


def assert_all_succeeded(report: dict) -> None:
    assert report["count"] == SMOKE_REQUESTS
    assert report["statusCodeDistribution"] == {"OK": SMOKE_REQUESTS}, report.get("errorDistribution")
    assert report["options"]["connections"] == 16


def test_every_loadtest_config_is_here():
    names = {config.stem for config in CONFIGS}
    run_sh = (ROOT / "loadtest" / "run.sh").read_text()
    assert names == set(re.search(r"\$\{\*:-([^}]*)\}", run_sh).group(1).split())


@pytest.mark.parametrize("config", CONFIGS, ids=lambda config: config.stem)
def test_loadtest_config_runs(address, config):
    assert_all_succeeded(smoke(["ghz", "--config", str(config.relative_to(ROOT))], address))


def test_readme_ghz_commands_run(address):
    commands = readme_ghz_commands()
    assert len(commands) >= 2
    for argv in commands:
        assert_all_succeeded(smoke(argv, address))
