"""Crash-safe, resumable crawls: SIGKILL, Ctrl-C or SIGTERM at any moment, then `crawl --db DB`, on both
engines, ends `finished` with every reachable page stored exactly once; a locked database is waited for.

Each crawl is the real CLI in its own session (a process group, like a shell job). Synchronisation is
bounded polling of real state only: the page count in the database (opened read-only), the crawl's
stderr, the process table. The test site counts the requests it serves (GET /_hits), so each resumed run
is checked to fetch again only what the stopped run had in flight.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path

import pytest
from conftest import Site
from crawl_jobs import (
    Job,
    Requests,
    Stalled,
    assert_consistent,
    assert_gone,
    count,
    pages_stored,
    query,
    seconds_until,
    wait_for,
)
from sqlalchemy import text

import crawler.crawl as crawl_module
from crawler import runner
from crawler.crawl import Crawl
from crawler.progress import Progress
from crawler.settings import Limits, Settings
from crawler.stop import Stop
from crawler.store.schema import INTERRUPTED
from crawler.store.sql import open_store
from crawler.testsite import path_of, reachable
from crawler.urls import Scope, host_of

PAGES, FANOUT = 1000, 8
# Each stopped run stores up to two commits more than it waits for (the one that ends the wait and the
# one its signal saves; 260 pages seen): five such runs must not finish the site.
STOP_PAGES = 2000
SMALL = 300  # pages of the site for the tests that need no request counts
CONCURRENCY = 20
FAST = ("--concurrency", str(CONCURRENCY), "--per-host", str(CONCURRENCY), "--parse-workers", "2", "--quiet")
# Fetched again after a SIGKILL: the requests in flight (at most CONCURRENCY) and the pages fetched but not
# yet committed (the batch being saved and the one filling: each at most BATCH_SECONDS of fetching; far
# less on this single-host site).
KILL_REPEATS = 3 * CONCURRENCY
STOP_SECONDS = 10.0  # SIGINT/SIGTERM to exit: wind-down (in-flight requests get up to 5 s) and cleanup
NOTICE_SECONDS = 2.0  # a signal to the "stopping" notice its handler prints: the loop never blocks long


def assert_complete(db: Path, site: Site, pages: int = PAGES) -> None:
    """Every reachable page exactly once, every frontier row done, the crawl finished."""
    assert_consistent(db)
    expected = {site.url.rstrip("/") + path_of(i) for i in reachable(pages, FANOUT)}
    urls = [url for (url,) in query(db, "SELECT url FROM pages")]
    assert len(urls) == len(expected) and set(urls) == expected
    assert query(db, "SELECT state, count(*) FROM frontier GROUP BY state") == [("done", len(expected))]
    assert query(db, "SELECT id, status FROM crawls") == [(1, "finished")]


# -- the sites -------------------------------------------------------------------------------------------


def own_site(pages: int) -> Iterator[Site]:
    """A site of its own, so the request counts are this module's only."""
    started = Site("--pages", str(pages), "--fanout", str(FANOUT), "--size", "500")
    yield started
    started.stop()


@pytest.fixture(scope="module")
def site() -> Iterator[Site]:
    yield from own_site(PAGES)


@pytest.fixture(scope="module")
def stops_site() -> Iterator[Site]:
    yield from own_site(STOP_PAGES)


@pytest.fixture
def small_site(site_factory: Callable[..., Site]) -> Site:
    return site_factory("--pages", str(SMALL), "--fanout", str(FANOUT), "--size", "500")


# -- one run of a crawl ---------------------------------------------------------------------------------


def start(site: Site, db: Path, engine: str, *args: str) -> Job:
    return Job(site.url, *args, "--engine", engine, "--db", str(db), *FAST)


def resume(db: Path, engine: str) -> Job:
    """`crawl --db DB` resumes with the saved settings; --engine overrides the saved one."""
    return Job("--db", str(db), "--engine", engine)


def stored_more(db: Path, more: int) -> Callable[[], bool]:
    """Ready once the next run has stored `more` pages (0: once the crawl row exists). Call it before the
    run starts: then a signal always finds the run past its start-up, with its handlers in place."""
    if more == 0:
        return lambda: count(db, "SELECT count(*) FROM crawls") > 0
    target = pages_stored(db) + more
    return lambda: pages_stored(db) >= target


def kill(job: Job, db: Path, ready: Callable[[], bool], group: bool) -> None:
    """SIGKILL the crawl (with `group`, its whole process group) once `ready`: it and every process it
    started are gone soon after, and the database it leaves is consistent."""
    wait_for(ready, "the moment to kill", job)
    descendants = job.descendants()
    job.signal(signal.SIGKILL, group)
    assert job.wait(10) == -signal.SIGKILL
    assert_gone(descendants)
    assert_consistent(db)


EXIT_CODES = {signal.SIGINT: 130, signal.SIGTERM: 143, signal.SIGHUP: 129}


def interrupt(job: Job, db: Path, ready: Callable[[], bool], signum: int, group: bool) -> float:
    """SIGINT or SIGTERM once `ready`: the crawl stops within seconds, says how to resume, ends
    `interrupted` with the right exit code, and leaves no process behind; the time it took."""
    wait_for(ready, "the moment to stop", job)
    descendants = job.descendants()
    began = time.monotonic()
    job.signal(signum, group)
    noticed = seconds_until(lambda: "stopping" in job.stderr or job.proc.poll() is not None, NOTICE_SECONDS)
    code = job.wait(STOP_SECONDS + 30)
    seconds = time.monotonic() - began
    assert (code, seconds < STOP_SECONDS) == (EXIT_CODES[signum], True), (seconds, job.stderr)
    assert "stopping" in job.stderr and noticed < NOTICE_SECONDS  # the handler ran at once, gevent too
    assert "to resume" in job.stderr and "Traceback" not in job.stderr, job.stderr
    assert "resource_tracker" not in job.stderr, job.stderr
    assert query(db, "SELECT status FROM crawls") == [("interrupted",)]
    assert_gone(descendants)
    assert_consistent(db)
    return seconds


def finish(job: Job, db: Path, site: Site, pages: int = PAGES) -> None:
    assert job.wait() == 0, job.stderr
    assert_complete(db, site, pages)


# -- the tests ---------------------------------------------------------------------------------------------


# A run stores the pages it waits for and then up to one more commit (0.5 s of fetching, at most 200 pages)
# before its signal lands. The waits below are small enough that no run finishes the 1000-page site
# before its signal, even on a fast machine: with 200-page overshoots, 960 pages by the last wait.
KILLS = [  # (engine, pages the run stores before its SIGKILL (0: none, once the crawl row exists), group?)
    ("gevent", 0, True),  # right after start, maybe before its seeds are queued: every run queues them again
    ("threads", 120, False),  # the crawl process alone: its extraction processes must die with it
    ("gevent", 100, False),
    ("threads", 100, True),
    ("gevent", 60, True),  # late
]


def test_killed_at_any_moment_resumes_to_every_page_exactly_once(site: Site, tmp_path: Path) -> None:
    """SIGKILL at several points, on both engines, each run resuming the last: the crawl ends finished
    with every page once, and each run fetches again only what the killed one had in flight or had not
    yet committed."""
    db, requests = tmp_path / "crawl.db", Requests(site)
    for i, (engine, more, group) in enumerate(KILLS):
        ready = stored_more(db, more)
        kill(start(site, db, engine) if i == 0 else resume(db, engine), db, ready, group)
        requests.run_ended()
    finish(resume(db, "threads"), db, site)
    requests.run_ended()
    assert max(requests.repeats) <= KILL_REPEATS, requests.repeats


STOPS = [  # (engine, pages the run stores before the signal, the signal, to the whole group?)
    ("gevent", 90, signal.SIGINT, True),  # a terminal's Ctrl-C goes to the whole foreground group
    ("threads", 90, signal.SIGINT, True),
    ("gevent", 90, signal.SIGTERM, False),  # `kill PID`
    ("threads", 60, signal.SIGTERM, True),  # a service manager stopping the whole group
    ("gevent", 60, signal.SIGHUP, True),  # the terminal closed, or the ssh connection dropped
]


def test_ctrl_c_and_sigterm_stop_within_seconds_and_resume(stops_site: Site, tmp_path: Path) -> None:
    """SIGINT, SIGTERM and SIGHUP, to the crawl process or its group, on both engines: each stops within seconds
    with its exit code and the resume hint; in-flight requests finish, so nothing is fetched twice."""
    site, db, requests = stops_site, tmp_path / "crawl.db", Requests(stops_site)
    for i, (engine, more, signum, group) in enumerate(STOPS):
        ready = stored_more(db, more)
        interrupt(start(site, db, engine) if i == 0 else resume(db, engine), db, ready, signum, group)
        requests.run_ended()
    finish(resume(db, "gevent"), db, site, STOP_PAGES)
    requests.run_ended()
    assert requests.repeats == [0] * (len(STOPS) + 1)  # one count per run


@pytest.fixture
def stalled() -> Iterator[Stalled]:
    server = Stalled()
    yield server
    server.close()


def test_a_second_ctrl_c_stops_at_once(small_site: Site, stalled: Stalled, tmp_path: Path, engine: str) -> None:
    """With a request that never ends, the first Ctrl-C waits for it (up to the grace period); the second
    stops at once, still leaving a consistent database that resumes to a complete crawl."""
    db = tmp_path / "crawl.db"
    ready = stored_more(db, 50)
    job = Job(small_site.url, stalled.url, "--engine", engine, "--db", str(db), *FAST)
    wait_for(ready, "50 pages", job)
    descendants = job.descendants()
    began = time.monotonic()
    job.signal(signal.SIGINT, group=True)
    wait_for(lambda: "stopping" in job.stderr, "the stopping notice", job, timeout=STOP_SECONDS)
    assert job.proc.poll() is None  # winding down: waiting for the stalled request
    job.signal(signal.SIGINT, group=True)
    assert job.wait(30) == 130
    assert time.monotonic() - began < crawl_module.STOP_GRACE  # it did not wait the grace period out
    assert "Traceback" not in job.stderr and "to resume" in job.stderr, job.stderr
    assert_gone(descendants)
    assert_consistent(db)
    stalled.release.set()
    assert resume(db, "threads" if engine == "gevent" else "gevent").wait() == 0
    urls = [url for (url,) in query(db, "SELECT url FROM pages")]
    assert len(urls) == len(set(urls)) == SMALL + 1 and stalled.url in urls
    assert query(db, "SELECT status FROM crawls") == [("finished",)]


def test_a_locked_database_is_waited_for(small_site: Site, stalled: Stalled, tmp_path: Path) -> None:
    """Another process holding the SQLite write lock for 2 s (a user's sqlite3 session) makes the crawl
    wait and retry: it loses no page, stores none twice, and finishes. Ctrl-C while the database is
    locked still stops the crawl within seconds (what it could not save, a resume fetches again).
    A request that stays in flight until released keeps the crawl running however fast the machine."""
    db = tmp_path / "crawl.db"
    ready = stored_more(db, 50)
    job = Job(small_site.url, stalled.url, "--engine", "gevent", "--db", str(db), *FAST)
    wait_for(ready, "50 pages", job)
    with closing(sqlite3.connect(db, isolation_level=None, check_same_thread=False)) as locker:
        locker.execute("BEGIN EXCLUSIVE")
        held = pages_stored(db)
        release = threading.Timer(2.0, locker.execute, ("ROLLBACK",))
        release.start()
        release.join()
        assert (pages_stored(db), job.proc.poll()) == (held, None)  # the lock held, the crawl waited
        wait_for(stored_more(db, 50), "50 more pages", job)
        locker.execute("BEGIN EXCLUSIVE")
        job.signal(signal.SIGINT, group=True)
        wait_for(lambda: "stopping" in job.stderr, "the stopping notice", job, timeout=NOTICE_SECONDS)
        stalled.release.set()  # the wind-down need not wait its grace period out for it
        assert job.wait(STOP_SECONDS) == 130 and "to resume" in job.stderr, job.stderr
        locker.execute("ROLLBACK")
    assert resume(db, "threads").wait() == 0
    urls = [url for (url,) in query(db, "SELECT url FROM pages")]
    assert len(urls) == len(set(urls)) == SMALL + 1 and stalled.url in urls
    assert query(db, "SELECT status FROM crawls") == [("finished",)]


@pytest.mark.parametrize("seeds", [(), ("http://127.0.0.1:9/",)], ids=["resume", "start"])
def test_ctrl_c_while_a_lock_is_held_at_start_up_stops_within_seconds(tmp_path: Path, seeds: tuple[str, ...]) -> None:
    """Another process holds the write lock before the crawl opens the database: after ~2 s the crawl
    says what it waits for, and Ctrl-C then ends it within seconds (130), with nothing written."""
    db = tmp_path / "crawl.db"
    with closing(open_store(str(db))) as store:
        store.start_crawl(["http://127.0.0.1:9/"], Settings().to_json())
    with closing(sqlite3.connect(db, isolation_level=None, check_same_thread=False)) as locker:
        locker.execute("BEGIN EXCLUSIVE")
        job = Job(*seeds, "--db", str(db), "--quiet")
        wait_for(lambda: "waiting for the database lock" in job.stderr, "the waiting notice", job, timeout=30)
        assert str(db) in job.stderr
        job.signal(signal.SIGINT, group=False)
        assert job.wait(STOP_SECONDS) == 130, job.stderr
        locker.execute("ROLLBACK")
    assert "stopped while waiting for the database" in job.stderr and "Traceback" not in job.stderr
    assert query(db, "SELECT count(*) FROM crawls") == [(1,)]


def test_max_pages_per_host_spans_a_resume(small_site: Site, tmp_path: Path) -> None:
    """--max-pages-per-host is a budget for the whole crawl: a resumed run counts what the earlier runs
    queued, so links it discovers can't bring the host past the budget."""
    db = tmp_path / "crawl.db"
    budget = 60
    job = Job(small_site.url, "--engine", "gevent", "--db", str(db), "--max-pages-per-host", str(budget),
              "--per-host", "1", "--delay", "0.05", "--parse-workers", "1", "--quiet")
    interrupt(job, db, stored_more(db, 10), signal.SIGINT, group=True)
    assert resume(db, "threads").wait() == 0
    assert query(db, "SELECT count(*), count(DISTINCT url) FROM pages") == [(budget, budget)]


def test_a_crawl_a_live_process_works_on_is_not_resumed(tmp_path: Path) -> None:
    """A resume while another live process runs the crawl would requeue that process's claims: refused,
    naming the process; once the process is gone (its pid no longer exists) the crawl resumes."""
    db = tmp_path / "crawl.db"
    with closing(open_store(str(db))) as store:
        crawl_id = store.start_crawl(["http://a.test/"], Settings().to_json())
        run_id = store.start_run(crawl_id)  # this very process: alive
        with pytest.raises(runner.CrawlBusy, match=f"crawl {crawl_id} is running in process {os.getpid()}"):
            runner.refuse_if_busy(store, crawl_id)
        store.write(lambda conn: conn.execute(text("UPDATE runs SET pid = :p WHERE id = :i"),
                                              {"p": dead_pid(), "i": run_id}))
        runner.refuse_if_busy(store, crawl_id)  # gone: no error
        assert store.live_runs(crawl_id) == []


def dead_pid() -> int:
    """The pid of a process that has exited."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait(timeout=30)
    return proc.pid


def test_a_stop_while_the_last_write_waits_for_a_lock_ends_interrupted(tmp_path: Path) -> None:
    """The crawl was done, but its `finished` status could not be written (the database locked) when a
    Ctrl-C came: it ends interrupted at once, and its row stays `running`, which a resume finishes."""
    db = tmp_path / "crawl.db"
    stop = Stop()
    with closing(open_store(str(db), busy_timeout=0.05, give_up=stop.requested)) as store:
        crawl_id = store.start_crawl(["http://a.test/"], Settings().to_json())
        with closing(sqlite3.connect(db, isolation_level=None)) as locker:
            locker.execute("BEGIN EXCLUSIVE")
            stop.signum = signal.SIGINT
            assert runner._record_end(store, crawl_id, "finished", stop) == INTERRUPTED
            locker.execute("ROLLBACK")
    assert query(db, "SELECT status FROM crawls") == [("running",)]


def test_a_crawl_that_reached_max_pages_is_done_until_given_more(site: Site, tmp_path: Path) -> None:
    """--max-pages counts across a kill and a resume; a finished crawl is not resumed, but one that stopped
    at its --max-pages goes on when given a larger one, to that many pages in all."""
    db = tmp_path / "crawl.db"
    ready = stored_more(db, 60)  # (plus a commit of overshoot: still well short of 300)
    kill(start(site, db, "gevent", "--max-pages", "300"), db, ready, group=True)
    assert resume(db, "threads").wait() == 0
    assert query(db, "SELECT count(*), count(DISTINCT url) FROM pages") == [(300, 300)]
    assert query(db, "SELECT status FROM crawls") == [("finished",)]
    again = resume(db, "gevent")
    assert again.wait() == 2 and again.stderr.startswith("crawl: nothing to resume"), again.stderr
    assert "stopped at --max-pages 300" in again.stderr and "give a larger --max-pages" in again.stderr
    same = Job("--db", str(db), "--max-pages", "300", "--quiet")
    assert same.wait() == 2 and "nothing to resume" in same.stderr
    more = Job("--db", str(db), "--max-pages", "350", "--quiet")
    assert more.wait() == 0 and "continuing crawl 1, which stopped at --max-pages 300" in more.stderr, more.stderr
    assert query(db, "SELECT count(*), count(DISTINCT url) FROM pages") == [(350, 350)]
    assert query(db, "SELECT id, status FROM crawls") == [(1, "finished")]


# -- backpressure, in process ----------------------------------------------------------------------


class StalledEngine:
    """An engine whose work never finishes; it counts what it was given and stops the crawl after a while."""

    name = "stalled"

    def __init__(self) -> None:
        self.submitted = 0
        self.polls = 0
        self.stop: Stop | None = None

    def submit(self, fn: Callable[[object], object], arg: object) -> None:
        self.submitted += 1

    def results(self, timeout: float) -> list[object]:
        self.polls += 1
        if self.polls >= 50 and self.stop is not None:
            self.stop.signum = signal.SIGINT
        return []

    def close(self) -> None:
        pass


def test_work_handed_to_the_engine_is_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With many hosts and nothing finishing, the loop stops handing out work at the concurrency (plus
    at most the scheduler's buffer, AHEAD jobs per request in flight): queues between the frontier and
    the engine don't grow."""
    monkeypatch.setattr(crawl_module, "STOP_GRACE", 0.0)
    settings = Settings(limits=Limits(concurrency=10, per_host=2), parse_workers=0, ignore_robots=True)
    seeds = [f"http://h{i}.test/" for i in range(500)]  # one job per host: no host slot ever holds one back
    with closing(open_store(str(tmp_path / "crawl.db"))) as store:
        crawl_id = store.start_crawl(seeds, settings.to_json())
        frontier = store.frontier(crawl_id)
        frontier.add((url, host_of(url), 0) for url in seeds)
        engine = StalledEngine()
        crawl = Crawl(settings, frontier, store.pages(crawl_id), engine, Scope.build(seeds, "all", (), ()))
        engine.stop = crawl.stop
        assert crawl.run(Progress(enabled=False)) == "interrupted"
    assert engine.polls >= 50 and 10 <= engine.submitted <= (1 + crawl_module.AHEAD) * 10
