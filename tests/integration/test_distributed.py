"""The distributed mode end to end: `crawl SEEDS --frontier redis://...` and `crawl worker` processes on
one private redis-server and a fresh PostgreSQL schema, crawling a local site whose server logs every
request. Each case checks what the design promises: every page stored once, each page fetched once
when nothing crashes, politeness as the server saw it, termination, and recovery from crashes,
stalls, a flushed Redis and killed PostgreSQL connections.
"""

from __future__ import annotations

import itertools
import json
import signal
import time
import urllib.request
from collections.abc import Iterator

import pytest
import redis
from conftest import Site
from crawl_jobs import Job, hits, wait_for
from sqlalchemy import create_engine, text

pytest_plugins = ["conftest_db", "conftest_redis"]
pytestmark = pytest.mark.timeout(180)
QUIET = ("--quiet", "--parse-workers", "1")
FAST = ("--timeout", "5", "--retries", "0")


@pytest.fixture
def site_of() -> Iterator:
    started: list[Site] = []

    def make(pages: int, *args: str) -> Site:
        started.append(Site("--pages", str(pages), "--fanout", "4", *args))
        return started[-1]

    yield make
    for site in started:
        site.stop()


class Crawl:
    """One distributed crawl: its first process, the workers that join it, and what they stored."""

    def __init__(self, redis_url: str, pg_db: str) -> None:
        self.redis_url = redis_url
        self.db = pg_db + "&application_name=crawler_test"
        self.jobs: list[Job] = []
        self.engine = create_engine(pg_db)

    def start(self, site: Site, *args: str, env: dict[str, str] | None = None) -> Job:
        job = Job(site.url, "--frontier", self.redis_url, "--db", self.db, *QUIET, *FAST, *args, env=env)
        self.jobs.append(job)
        wait_for(lambda: self.scalar("SELECT count(*) FROM crawls") > 0, "the crawl's row", job)
        return job

    def worker(self, *args: str, env: dict[str, str] | None = None) -> Job:
        job = Job("worker", "--frontier", self.redis_url, "--db", self.db, *QUIET, *args, env=env)
        self.jobs.append(job)
        return job

    def scalar(self, sql: str) -> int:
        try:
            with self.engine.connect() as conn:
                return conn.execute(text(sql)).scalar_one()
        except Exception:  # noqa: BLE001 (the tables may not exist yet)
            return 0

    def pages(self) -> int:
        return self.scalar("SELECT count(*) FROM pages")

    def assert_stored_once(self, site: Site, pages: int) -> None:
        assert self.pages() == pages
        assert self.scalar("SELECT count(DISTINCT url) FROM pages") == pages
        assert self.scalar("SELECT count(*) FROM pages WHERE error IS NOT NULL") == 0
        assert self.scalar("SELECT count(*) FROM crawls WHERE status = 'finished'") == 1
        served = hits(site)
        assert all(served[path] >= 1 for path in page_paths(pages))

    def wait_all(self, timeout: float = 120) -> list[int]:
        return [job.wait(timeout) for job in self.jobs]


def page_paths(pages: int) -> list[str]:
    return ["/"] + [f"/page/{i}" for i in range(1, pages)]


def request_log(site: Site) -> list[tuple[str, float, float]]:
    with urllib.request.urlopen(site.url + "_log", timeout=10) as response:
        return [tuple(entry) for entry in json.load(response)]


def max_overlap(log: list[tuple[str, float, float]]) -> int:
    events = sorted([(start, 1) for _, start, _ in log] + [(end, -1) for _, _, end in log])
    most = now = 0
    for _, step in events:
        now += step
        most = max(most, now)
    return most


@pytest.fixture
def crawl(redis_url: str, pg_db: str) -> Iterator[Crawl]:
    shared = Crawl(redis_url, pg_db)
    yield shared
    for job in shared.jobs:
        if job.proc.poll() is None:
            job.signal(signal.SIGKILL, group=True)
            job.wait(10)
    shared.engine.dispose()


def test_four_workers_store_every_page_once_and_fetch_each_once(crawl: Crawl, site_of) -> None:
    site = site_of(1000)
    crawl.start(site, "--concurrency", "8")
    for _ in range(3):
        crawl.worker("--concurrency", "8")
    assert crawl.wait_all() == [0, 0, 0, 0], [job.stderr for job in crawl.jobs]
    crawl.assert_stored_once(site, 1000)
    served = hits(site)
    assert [path for path in page_paths(1000) if served[path] != 1] == []
    assert served["/robots.txt"] == 1  # once per crawl, not once per worker
    working = crawl.scalar("SELECT count(*) FROM runs WHERE pages > 0")
    assert working >= 2, "the work was not shared"
    stats = Job("stats", "--db", crawl.db)
    assert stats.wait() == 0


@pytest.mark.parametrize("step", ["after-claim", "mid-fetch", "after-links", "after-commit", "after-ack"])
def test_a_worker_killed_at_any_step_loses_nothing(crawl: Crawl, site_of, step: str) -> None:
    site = site_of(150, "--latency", "0.05")
    crawl.start(site, "--concurrency", "1", "--lease", "3")  # alone, >= 7.5 s: the doomed one joins in time
    doomed = crawl.worker("--concurrency", "4", env={"CRAWL_TEST_DIE_AT": step})
    crawl.worker("--concurrency", "4")
    codes = crawl.wait_all()
    assert codes[1] == -signal.SIGKILL, doomed.stderr
    assert codes[0] == codes[2] == 0, [job.stderr for job in crawl.jobs]
    crawl.assert_stored_once(site, 150)


def test_a_stalled_worker_is_fenced_out(crawl: Crawl, site_of) -> None:
    site = site_of(200, "--latency", "0.02")
    stalled = crawl.start(site, "--concurrency", "4", "--lease", "3")
    wait_for(lambda: crawl.pages() >= 20, "pages stored", stalled)
    stalled.signal(signal.SIGSTOP, group=True)
    other = crawl.worker("--concurrency", "4", "--lease", "3")
    assert other.wait() == 0, other.stderr
    crawl.assert_stored_once(site, 200)  # finished while the stalled one still held (expired) claims
    stalled.signal(signal.SIGCONT, group=True)
    assert stalled.wait() == 0, stalled.stderr
    assert "expired" in stalled.stderr
    crawl.assert_stored_once(site, 200)


def test_politeness_holds_across_workers(crawl: Crawl, site_of) -> None:
    site = site_of(120, "--latency", "0.05")
    crawl.start(site, "--concurrency", "8", "--per-host", "2")
    for _ in range(3):
        crawl.worker("--concurrency", "8")
    assert crawl.wait_all() == [0, 0, 0, 0], [job.stderr for job in crawl.jobs]
    assert max_overlap(request_log(site)) <= 2
    assert crawl.scalar("SELECT count(*) FROM runs WHERE pages > 0") >= 2


def test_delay_spaces_request_starts_across_workers(crawl: Crawl, site_of) -> None:
    site = site_of(20)
    crawl.start(site, "--concurrency", "4", "--per-host", "1", "--delay", "0.2")
    crawl.worker("--concurrency", "4")
    assert crawl.wait_all() == [0, 0], [job.stderr for job in crawl.jobs]
    starts = sorted(start for path, start, _ in request_log(site) if path != "/robots.txt")
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert len(starts) == 20 and min(gaps) >= 0.2 - 0.005, gaps


def test_a_flushed_redis_is_rebuilt_from_the_database(crawl: Crawl, site_of) -> None:
    site = site_of(300, "--latency", "0.02")
    first = crawl.start(site, "--concurrency", "4")
    crawl.worker("--concurrency", "4")
    wait_for(lambda: crawl.pages() >= 60, "pages stored", first)
    redis.Redis.from_url(crawl.redis_url).flushall()
    assert crawl.wait_all() == [0, 0], [job.stderr for job in crawl.jobs]
    crawl.assert_stored_once(site, 300)
    assert any("rebuilding" in job.stderr for job in crawl.jobs)


def test_killed_postgresql_connections_are_waited_out(crawl: Crawl, site_of) -> None:
    site = site_of(300, "--latency", "0.02")
    first = crawl.start(site, "--concurrency", "4")
    crawl.worker("--concurrency", "4")
    for done in (40, 120):
        wait_for(lambda done=done: crawl.pages() >= done, "pages stored", first)
        with crawl.engine.begin() as conn:
            killed = conn.execute(text("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                                       "WHERE application_name = 'crawler_test'")).scalar_one()
        assert killed >= 1
    assert crawl.wait_all() == [0, 0], [job.stderr for job in crawl.jobs]
    crawl.assert_stored_once(site, 300)
    assert not any("Traceback" in job.stderr for job in crawl.jobs)


def test_ctrl_c_gives_back_one_workers_claims_and_the_others_finish(crawl: Crawl, site_of) -> None:
    site = site_of(200, "--latency", "0.02")
    crawl.start(site, "--concurrency", "4")
    leaving = crawl.worker("--concurrency", "4")
    wait_for(lambda: crawl.scalar("SELECT count(*) FROM runs") >= 2 and crawl.pages() >= 30, "work", leaving)
    leaving.signal(signal.SIGINT, group=False)
    began = time.monotonic()
    assert leaving.wait() == 130, leaving.stderr
    assert crawl.jobs[0].wait() == 0
    assert time.monotonic() - began < 60  # given back at once: no lease had to expire for the rest
    crawl.assert_stored_once(site, 200)


def test_all_workers_exit_soon_after_the_last_page(crawl: Crawl, site_of) -> None:
    site = site_of(100)
    crawl.start(site, "--concurrency", "4")
    crawl.worker("--concurrency", "4")
    crawl.worker("--concurrency", "4")
    assert crawl.wait_all() == [0, 0, 0]
    exited = time.time()
    finished = crawl.scalar("SELECT extract(epoch FROM finished_at) FROM crawls")
    assert exited - float(finished) < 10


def test_unreachable_redis_is_one_line_and_writes_nothing(pg_db: str, site_of) -> None:
    site = site_of(5)
    job = Job(site.url, "--frontier", "redis://127.0.0.1:1/0", "--db", pg_db, *QUIET)
    assert job.wait() == 1
    assert job.stderr.startswith("crawl: cannot reach the frontier at redis://127.0.0.1:1/0")
    assert len(job.stderr.strip().splitlines()) == 1


def test_a_worker_without_a_running_crawl_says_so(redis_url: str, pg_db: str) -> None:
    job = Job("worker", "--frontier", redis_url, "--db", pg_db, "--quiet")
    assert job.wait() == 1
    assert "no running crawl" in job.stderr
