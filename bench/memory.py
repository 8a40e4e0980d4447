"""Peak memory of a crawl against the size of the site: it must stay flat (the frontier lives in the database).

For each size N, starts `python -m crawler.testsite --pages N --fanout 40 --size 3000`, crawls it with the
real CLI into a temporary SQLite file (gevent, --concurrency 50 --per-host 50 --parse-workers 2, --quiet),
and samples the RSS of the crawl's whole process tree (the crawl and its extraction processes) every
0.1 s (crawler.bench.TreeSampler). Prints one row per size, then the ratio of the largest size's peak to the smallest's.

    python bench/memory.py                      # 1000, 10000 and 50000 pages (50k takes several minutes)
    python bench/memory.py --pages 1000 10000 --engine threads

Not a test: nothing here is timed or asserted; the numbers go in the closing note of the change.
"""

from __future__ import annotations

import argparse
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from crawler.bench import TreeSampler

ROOT = Path(__file__).resolve().parent.parent
MiB = 1024 * 1024


@dataclass
class Run:
    pages: int  # the site's size
    stored: int  # page rows the crawl stored
    frontier: int  # frontier rows (distinct URLs discovered)
    links: int  # link rows (every link of every page: what dedup had to see)
    seconds: float
    peak_tree: int  # bytes: the largest sum of RSS over the process tree
    peak_main: int  # bytes: the largest RSS of the crawl process alone
    returncode: int

    def row(self) -> str:
        return (f"{self.pages:>8} {self.stored:>8} {self.frontier:>9} {self.links:>10} {self.seconds:>8.1f} "
                f"{self.peak_tree / MiB:>10.1f} {self.peak_main / MiB:>10.1f}")


HEADER = f"{'site':>8} {'pages':>8} {'frontier':>9} {'links':>10} {'seconds':>8} {'tree MiB':>10} {'main MiB':>10}"


@contextmanager
def site(pages: int, fanout: int, size: int) -> Iterator[str]:
    cmd = [sys.executable, "-m", "crawler.testsite", "--pages", str(pages), "--fanout", str(fanout),
           "--size", str(size)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=ROOT)
    try:
        assert proc.stdout is not None
        yield proc.stdout.readline().strip()
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def counts(db: Path) -> tuple[int, int, int]:
    with sqlite3.connect(db) as conn:
        return tuple(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]  # type: ignore[return-value]
                     for table in ("pages", "frontier", "links"))


def crawl(url: str, db: Path, args: argparse.Namespace) -> tuple[float, TreeSampler, int]:
    cmd = [sys.executable, "-m", "crawler", url, "--db", str(db), "--engine", args.engine, "--quiet",
           "--concurrency", str(args.concurrency), "--per-host", str(args.concurrency),
           "--parse-workers", str(args.parse_workers)]
    began = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL)
    with TreeSampler(proc.pid) as sampler:
        returncode = proc.wait(timeout=args.timeout)
    return time.monotonic() - began, sampler, returncode


def run(pages: int, args: argparse.Namespace) -> Run:
    with tempfile.TemporaryDirectory() as tmp, site(pages, args.fanout, args.size) as url:
        db = Path(tmp) / "memory.db"
        seconds, sampler, returncode = crawl(url, db, args)
        return Run(pages, *counts(db), seconds, sampler.peak, sampler.peak_root, returncode)


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, nargs="+", default=[1000, 10000, 50000])
    parser.add_argument("--engine", choices=["gevent", "threads"], default="gevent")
    parser.add_argument("--concurrency", type=int, default=50, help="also --per-host")
    parser.add_argument("--parse-workers", type=int, default=2)
    parser.add_argument("--fanout", type=int, default=40)
    parser.add_argument("--size", type=int, default=3000)
    parser.add_argument("--timeout", type=float, default=3600, help="seconds one crawl may take")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    print(f"engine {args.engine}, --concurrency {args.concurrency}, --parse-workers {args.parse_workers}; "
          f"site --fanout {args.fanout} --size {args.size}", flush=True)
    print(HEADER, flush=True)
    runs = []
    for pages in args.pages:
        runs.append(run(pages, args))
        print(runs[-1].row() + ("" if runs[-1].returncode == 0 else f"  exit {runs[-1].returncode}"), flush=True)
    if len(runs) > 1:
        ratio = runs[-1].peak_tree / max(runs[0].peak_tree, 1)
        print(f"peak tree RSS {runs[-1].pages} pages / {runs[0].pages} pages: {ratio:.2f}x", flush=True)


if __name__ == "__main__":
    main()
