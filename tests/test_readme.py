"""The README's promises: its Python example runs as written, and its
configuration table lists every setting."""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from server.settings import Settings, env_name

from .support import running_server

README = (Path(__file__).parent.parent / "README.md").read_text()


def test_readme_opens_with_the_two_commands():
    opening = README[:600]
    assert "make serve" in opening and "make test" in opening


def test_configuration_table_lists_every_setting_with_its_default():
    for field in dataclasses.fields(Settings):
        flag = "--" + field.name.replace("_", "-")
        row = next((line for line in README.splitlines() if line.startswith(f"| `{flag}` |")), None)
        assert row is not None, f"{flag} missing from the README"
        assert f"`{env_name(field)}`" in row
        default = field.default
        shown = str(default).lower() if isinstance(default, bool) else ("empty" if default == "" else str(default))
        shown = shown.removesuffix(".0")
        assert shown in row, f"{flag}: default {shown} not in {row!r}"


@pytest.mark.e2e
def test_python_example_runs_as_written(tmp_path):
    [example] = re.findall(r"```python\n(.*?)```", README, flags=re.S)
    with running_server("--database-url", f"sqlite:///{tmp_path}/readme.db") as (address, _):
        result = subprocess.run(
            [sys.executable, "-c", example],
            env={**os.environ, "SOCIALGRAPH_ADDRESS": address},
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["True True True", "INVALID_ARGUMENT INVALID_USER_ID followee_id"]
