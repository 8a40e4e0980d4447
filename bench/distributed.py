"""The distributed mode on one machine: 1, 2 and 4 `crawl` processes sharing one crawl, A B A B.

Writes the synthetic site (realistic ~30 KB pages, ~40 links) as static files served by nginx (see
bench/compare.py), then per run: a private redis-server on a free port (no persistence), a fresh
PostgreSQL database, `crawl SEEDS --frontier ... --db ...` plus N-1 `crawl worker` processes, each with
--concurrency C / N so the crawl has the same requests in flight whatever N. Measured per run: wall time
to the last exit, CPU of every worker's process tree (their extraction processes included: wait4's
rusage), Redis's own CPU (INFO cpu) and commands (INFO commandstats) per page, and PostgreSQL's
commits/s (pg_stat_database). Every run must store every page once.

This machine has 2 cores: 4 workers compete for them with nginx, Redis and PostgreSQL, so the pages/s
of N workers here measure the overhead of sharing, not the scaling of N machines; the per-page costs
(worker CPU, Redis CPU and commands, PostgreSQL commits) are what the README's estimate is built from.

    python bench/distributed.py [--pages 3000] [--rounds 2] [--concurrency 32] [--workers 1,2,4]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
import redis

sys.path.insert(0, str(Path(__file__).resolve().parent))
from compare import FANOUT, SIZE, free_port, nginx

from crawler.testsite import write_site

PG = os.environ.get("CRAWLER_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/test")


@dataclass
class Run:
    workers: int
    pages: int
    seconds: float
    cpu_seconds: float
    redis_cpu: float
    redis_calls: int
    commits: int

    def line(self) -> str:
        return (f"  {self.workers} workers {self.pages / self.seconds:7.1f} pages/s "
                f"{1000 * self.cpu_seconds / self.pages:6.2f} worker CPU ms/page "
                f"{1e6 * self.redis_cpu / self.pages:6.0f} Redis CPU us/page "
                f"{self.redis_calls / self.pages:5.1f} Redis commands/page "
                f"{self.commits / self.seconds:6.1f} PG commits/s ({self.seconds:.1f} s)")


@contextmanager
def private_redis() -> Iterator[redis.Redis]:
    port = free_port()
    proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no"], stdout=subprocess.DEVNULL)
    client = redis.Redis(port=port)
    try:
        for _ in range(100):
            try:
                client.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.05)
        yield client
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@contextmanager
def fresh_database() -> Iterator[str]:
    name = f"bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    try:
        yield PG.rsplit("/", 1)[0] + "/" + name
    finally:
        with psycopg.connect(PG, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE {name} WITH (FORCE)")


def redis_figures(client: redis.Redis) -> tuple[float, int]:
    cpu = client.info("cpu")
    calls = sum(int(v["calls"]) for k, v in client.info("commandstats").items() if k != "cmdstat_info")
    return float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"]), calls


def commits(db: str) -> int:
    with psycopg.connect(db.replace("postgresql+psycopg", "postgresql")) as conn:
        row = conn.execute("SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()")
        return int(row.fetchone()[0])  # type: ignore[index]


def wait_for_crawl(db: str, proc: subprocess.Popen[bytes]) -> None:
    for _ in range(600):
        if proc.poll() is not None:
            raise SystemExit(f"the crawl exited with {proc.returncode} before it started")
        try:
            with psycopg.connect(db) as conn:
                if conn.execute("SELECT count(*) FROM crawls").fetchone()[0]:  # type: ignore[index]
                    return
        except psycopg.Error:
            pass
        time.sleep(0.05)
    raise SystemExit("the crawl did not start")


def reap(procs: list[subprocess.Popen[bytes]]) -> float:
    """Wait for every process; the CPU seconds of their process trees."""
    cpu = 0.0
    for proc in procs:
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            raise SystemExit(f"a worker exited with {proc.returncode}")
        cpu += usage.ru_utime + usage.ru_stime
    return cpu


def run_once(url: str, workers: int, args: argparse.Namespace) -> Run:
    with private_redis() as client, fresh_database() as db:
        frontier = f"redis://127.0.0.1:{client.connection_pool.connection_kwargs['port']}/0"
        each = ("--quiet", "--concurrency", str(max(1, args.concurrency // workers)),
                "--parse-workers", "1", "--db", db, "--frontier", frontier)
        base_commits, began = commits(db), time.monotonic()
        first = subprocess.Popen([sys.executable, "-m", "crawler", url, "--per-host", str(args.concurrency),
                                  *each], stderr=subprocess.DEVNULL)
        wait_for_crawl(db, first)
        rest = [subprocess.Popen([sys.executable, "-m", "crawler", "worker", *each], stderr=subprocess.DEVNULL)
                for _ in range(workers - 1)]
        cpu = reap([first, *rest])
        seconds = time.monotonic() - began
        redis_cpu, calls = redis_figures(client)
        with psycopg.connect(db) as conn:
            pages = int(conn.execute("SELECT count(DISTINCT url) FROM pages WHERE title IS NOT NULL")
                        .fetchone()[0])  # type: ignore[index]
        if pages != args.pages:
            raise SystemExit(f"{workers} workers stored {pages} pages of {args.pages}")
        run = Run(workers, pages, seconds, cpu, redis_cpu, calls, commits(db) - base_commits)
    print(run.line(), flush=True)
    return run


def summary(runs: list[Run], counts: list[int]) -> str:
    rows = [("| workers | pages/s (median) | worker CPU ms/page | Redis CPU us/page | Redis commands/page "
            "| PG commits/s |"), "|---|---|---|---|---|---|"]
    rates = {}
    for n in counts:
        mine = [r for r in runs if r.workers == n]
        rates[n] = statistics.median(r.pages / r.seconds for r in mine)
        rows.append(f"| {n} | {rates[n]:.1f} "
                    f"| {statistics.median(1000 * r.cpu_seconds / r.pages for r in mine):.2f} "
                    f"| {statistics.median(1e6 * r.redis_cpu / r.pages for r in mine):.0f} "
                    f"| {statistics.median(r.redis_calls / r.pages for r in mine):.1f} "
                    f"| {statistics.median(r.commits / r.seconds for r in mine):.1f} |")
    rows += ["", *(f"{n} workers / 1: pages/s x{rates[n] / rates[counts[0]]:.2f}" for n in counts[1:])]
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--workers", default="1,2,4")
    args = parser.parse_args()
    counts = [int(n) for n in args.workers.split(",")]
    with tempfile.TemporaryDirectory(prefix="crawl-bench-") as tmp:
        root = Path(tmp) / "site"
        write_site(str(root), args.pages, FANOUT, SIZE)
        with nginx(root, Path(tmp)) as url:
            runs = []
            for round_ in range(args.rounds):
                print(f"round {round_ + 1}", flush=True)
                order = counts if round_ % 2 == 0 else counts[::-1]
                runs += [run_once(url, n, args) for n in order]
    print(summary(runs, counts))


if __name__ == "__main__":
    main()
