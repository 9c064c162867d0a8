"""buf.yaml's checks bite: on a copy of the module, a missing comment or an
unprefixed enum value fails lint, and a renamed field fails the breaking check."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from .support import require

ROOT = Path(__file__).parent.parent
BUF = ROOT / "tools" / "node_modules" / ".bin" / "buf"
COMMON = Path("protos/socialgraph/v1/common.proto")


@pytest.fixture
def module(tmp_path):
    """A copy of the buf module (buf.yaml and protos/)."""
    require("buf (make lint-protos installs it)", os.access(BUF, os.X_OK))
    shutil.copy(ROOT / "buf.yaml", tmp_path / "buf.yaml")
    shutil.copytree(ROOT / "protos", tmp_path / "protos")
    return tmp_path


def edit(module: Path, old: str, new: str) -> None:
    path = module / COMMON
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


def buf(module: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(BUF), *args], cwd=module, capture_output=True, text=True, timeout=60)


def test_the_module_passes_lint_and_breaking_as_it_is(module):
    assert buf(module, "lint").returncode == 0
    assert buf(module, "breaking", "--against", str(ROOT / "protos")).returncode == 0


def test_lint_wants_a_comment_on_every_field(module):
    edit(module, "  // Users who follow this user.\n", "")
    result = buf(module, "lint")
    assert result.returncode != 0
    assert 'Field "followers" should have a non-empty comment' in result.stdout


def test_only_error_reason_may_leave_out_the_enum_prefix(module):
    edit(module, "  REPORT_REASON_SPAM = 1;", "  SPAM = 1;")
    result = buf(module, "lint")
    assert result.returncode != 0
    assert "ENUM_VALUE_PREFIX" in result.stdout or 'should be prefixed with "REPORT_REASON_"' in result.stdout


def test_renaming_a_field_is_a_breaking_change(module):
    edit(module, "  string display_name = 3;", "  string name = 3;")
    result = buf(module, "breaking", "--against", str(ROOT / "protos"))
    assert result.returncode != 0
    assert 'changed name from "display_name" to "name"' in result.stdout
