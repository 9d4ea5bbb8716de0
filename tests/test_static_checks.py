"""The project's static checks, run as the suite runs everything: lint and format (ruff), types (mypy)
and the import contract (import-linter: converter -> hardware -> passes -> templates -> runtime ->
compiler, analyses apart from transforms, generated modules import only ttnn), each configured in
pyproject.toml."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


@pytest.mark.parametrize(
    "argv",
    [
        ("ruff", "check", "--output-format", "concise", "."),
        ("ruff", "format", "--check", "."),
        ("mypy",),
        ("lint-imports",),
    ],
    ids=["ruff-check", "ruff-format", "mypy", "import-contract"],
)
def test_static_check_is_clean(argv):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [str(BIN / argv[0]), *argv[1:]], cwd=ROOT, capture_output=True, text=True, timeout=600, env=env
    )
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
