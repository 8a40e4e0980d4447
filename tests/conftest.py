"""Shared fixtures: local synthetic sites in subprocesses, a fresh database per test, the real CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CLI_TIMEOUT = 90  # seconds: no crawl in the suite may take longer


class Site:
    """A `python -m crawler.testsite` subprocess; `url` is its base URL."""

    def __init__(self, *args: str) -> None:
        cmd = [sys.executable, "-m", "crawler.testsite", *args]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, cwd=ROOT)
        assert self.proc.stdout is not None
        self.url = self.proc.stdout.readline().strip()
        assert self.url.startswith("http://"), f"testsite did not start: {self.url!r}"

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


@pytest.fixture(scope="session")
def sites() -> Iterator[dict[tuple[str, ...], Site]]:
    started: dict[tuple[str, ...], Site] = {}
    yield started
    for site in started.values():
        site.stop()


@pytest.fixture(scope="session")
def site_factory(sites: dict[tuple[str, ...], Site]):  # type: ignore[no-untyped-def]
    """site_factory("--pages", "60") -> a running Site, shared by every test asking for the same args."""

    def make(*args: str) -> Site:
        if args not in sites:
            sites[args] = Site(*args)
        return sites[args]

    return make


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "crawl.db"


@pytest.fixture(params=["gevent", "threads"])
def engine(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def run_cli(*args: str, timeout: float = CLI_TIMEOUT, **kwargs: object) -> subprocess.CompletedProcess[str]:
    """The real `crawl` command line in a subprocess (gevent patches a whole process)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRAWL_")} | dict(kwargs.pop("env", {}))  # type: ignore[call-overload]
    return subprocess.run([sys.executable, "-m", "crawler", *args], capture_output=True, text=True, check=False,
                          timeout=timeout, cwd=kwargs.pop("cwd", ROOT), env=env, **kwargs)  # type: ignore[call-overload]
