"""Bench: `crawl bench`, a crawl of the bundled synthetic site measured from the outside, like `scrapy bench`.

The site (`crawler.testsite`, realistic pages) runs in its own process on 127.0.0.1 and the crawl in
another (`python -m crawler`, so gevent patches a fresh interpreter), into a temporary database that is
removed afterwards. Measured: wall time of the crawl command; CPU time of its whole process tree (the
crawl and its extraction processes, exact: getrusage of the reaped children) and of the crawl process
alone (read from /proc while it is a zombie: exited, not yet reaped); peak memory, the largest sum of RSS
over the tree seen by a sampler reading /proc every 0.1 s. bench/compare.py uses the same `measure` to
put `crawl` beside Scrapy and Crawlee.
"""

from __future__ import annotations

import os
import resource
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

SAMPLE_SECONDS = 0.1
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100  # units of /proc/PID/stat times
SITE_ARGS = ("--fanout", "40", "--size", "30000", "--html", "realistic")  # ~30 KB pages, ~40 links


@dataclass
class Measurement:
    """One command's run: wall seconds, CPU seconds of its process tree and of its root process alone,
    peak RSS sum of the tree."""

    seconds: float
    cpu_seconds: float
    peak_rss: int  # bytes
    returncode: int
    stderr: str = ""
    root_cpu_seconds: float = 0.0  # the command's own process, without its children

    @property
    def children_cpu_seconds(self) -> float:
        """CPU of the processes below the root (for `crawl`: its extraction processes)."""
        return max(self.cpu_seconds - self.root_cpu_seconds, 0.0)


@dataclass
class BenchResult:
    """A bench crawl: what was stored and what it cost."""

    pages: int
    measurement: Measurement
    engine: str
    settings: dict[str, int] = field(default_factory=dict)

    @property
    def pages_per_second(self) -> float:
        return self.pages / max(self.measurement.seconds, 1e-9)

    @property
    def cpu_ms_per_page(self) -> float:
        return 1000 * self.measurement.cpu_seconds / max(self.pages, 1)

    def split_ms_per_page(self) -> tuple[float, float]:
        """(crawl process, extraction processes) CPU ms per page."""
        m, pages = self.measurement, max(self.pages, 1)
        return 1000 * m.root_cpu_seconds / pages, 1000 * m.children_cpu_seconds / pages

    def report(self) -> str:
        m = self.measurement
        own, children = self.split_ms_per_page()
        options = " ".join(f"{k}={v}" for k, v in self.settings.items())
        return "\n".join([
            f"crawl bench: engine={self.engine} {options}",
            f"pages           {self.pages}",
            f"seconds         {m.seconds:.1f}",
            f"pages/s         {self.pages_per_second:.1f}",
            f"CPU ms/page     {self.cpu_ms_per_page:.1f}  (crawl process {own:.1f} + extraction {children:.1f})",
            f"peak memory     {m.peak_rss / 2**20:.0f} MiB  (RSS summed over the process tree)",
        ])


# -- measuring a process tree -------------------------------------------------------------------


def children_of(pid: int) -> list[int]:
    """The direct children of `pid` (Linux /proc); [] when it is gone or /proc can't say."""
    found: list[int] = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            found += [int(p) for p in Path(f"/proc/{pid}/task/{task}/children").read_text().split()]
    except OSError:
        pass
    return found


def tree_of(pid: int) -> list[int]:
    """`pid` and all its descendants."""
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo += children_of(current)
    return tree


def rss_of(pid: int) -> int:
    """Resident bytes of `pid`, 0 when it is gone."""
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE_SIZE
    except (OSError, IndexError, ValueError):
        return 0


class TreeSampler:
    """Samples the RSS sum of a process tree on a thread until stopped; keeps the peak of the tree
    (`peak`) and of the root process alone (`peak_root`)."""

    def __init__(self, pid: int, interval: float = SAMPLE_SECONDS) -> None:
        self.pid, self.interval, self.peak, self.peak_root = pid, interval, 0, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-sampler", daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def sample(self) -> None:
        self.peak = max(self.peak, sum(rss_of(pid) for pid in tree_of(self.pid)))
        self.peak_root = max(self.peak_root, rss_of(self.pid))

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval)


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def own_cpu_at_exit(pid: int) -> float:
    """CPU seconds child `pid` used itself (utime + stime, without its children's): waits for it to exit
    without reaping it (WNOWAIT), so its /proc/PID/stat still holds the final figures."""
    os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # stat fields 14 and 15


def measure(cmd: list[str], env: dict[str, str] | None = None) -> Measurement:
    """Run `cmd` to its end; its wall time, the CPU of its reaped process tree and of its own process,
    its peak RSS sum.

    CPU comes from getrusage(RUSAGE_CHILDREN), so run one measured command at a time per process.
    """
    cpu_before, began = children_cpu(), time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    with TreeSampler(proc.pid) as sampler:
        stderr = proc.stderr.read() if proc.stderr else ""
        own = own_cpu_at_exit(proc.pid)
        proc.wait()
    if proc.stderr:
        proc.stderr.close()
    seconds = time.monotonic() - began
    return Measurement(seconds, children_cpu() - cpu_before, sampler.peak, proc.returncode, stderr, own)


# -- the bench crawl ----------------------------------------------------------------------------


@contextmanager
def site(pages: int) -> Iterator[str]:
    """The synthetic site in its own process on 127.0.0.1; yields its base URL."""
    cmd = [sys.executable, "-m", "crawler.testsite", "--pages", str(pages), *SITE_ARGS]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    try:
        url = proc.stdout.readline().strip() if proc.stdout else ""
        if not url.startswith("http://"):
            raise RuntimeError(f"the test site did not start: {url!r}")
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        if proc.stdout:
            proc.stdout.close()


def crawl_command(url: str, db: str, engine: str, concurrency: int, parse_workers: int,
                  per_host: int | None = None) -> list[str]:
    """`crawl` for a bench; per-host defaults to the concurrency (one host: the default 4 would cap it)."""
    return [sys.executable, "-m", "crawler", url, "--db", db, "--quiet", "--engine", engine,
            "--concurrency", str(concurrency), "--per-host", str(per_host or concurrency),
            "--parse-workers", str(parse_workers)]


def stored_pages(db: str) -> int:
    """HTML pages stored with a title (what a complete bench crawl stores for every page)."""
    with sqlite3.connect(db) as conn:
        return int(conn.execute("SELECT count(*) FROM pages WHERE title IS NOT NULL").fetchone()[0])


def run(pages: int, engine: str, concurrency: int, parse_workers: int) -> BenchResult:
    """Crawl a fresh synthetic site of `pages` pages into a temporary database; remove it after."""
    settings = {"pages": pages, "concurrency": concurrency, "parse_workers": parse_workers}
    with site(pages) as url, tempfile.TemporaryDirectory(prefix="crawl-bench-") as tmp:
        db = os.path.join(tmp, "bench.db")
        measurement = measure(crawl_command(url, db, engine, concurrency, parse_workers))
        if measurement.returncode != 0:
            raise RuntimeError(f"the bench crawl failed: {measurement.stderr.strip()[-500:]}")
        return BenchResult(stored_pages(db), measurement, engine, settings)
