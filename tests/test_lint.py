"""The code as STYLE.md asks for it: ruff finds nothing, and the package is mypy-clean (pyproject's config)."""

from __future__ import annotations

import subprocess
import sys

from conftest import ROOT


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=300, check=False)


def test_ruff_finds_nothing() -> None:
    result = run("ruff", "check", "crawler", "tests", "bench")
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_package_is_mypy_clean() -> None:
    result = run("mypy")
    assert result.returncode == 0, result.stdout + result.stderr
