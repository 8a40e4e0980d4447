"""The extraction pool when a page takes too long or a process dies or hangs: the page becomes a
`parse error` row, a slow page's process goes on with the next one, a dead one is replaced, and the
crawl goes on.

Real processes (a spawn Pool, as the crawl starts it) and a real local site, on both engines.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from multiprocessing.pool import Pool
from typing import Any

import pytest
from conftest import Site

from crawler.extract.pool import TooSlow, dead_after, run_within, start_extraction, stop_pool
from crawler.fetch import load_engine
from crawler.fetch.client import Client
from crawler.fetch.guard import AddressGuard
from crawler.jobs import JobRunner
from crawler.politeness import Politeness
from crawler.records import Job
from crawler.scheduler import Scheduler
from crawler.settings import Limits, Settings
from crawler.urls import Scope

TIMEOUT = 1.0


@pytest.fixture
def pool() -> Iterator[Pool]:
    started = start_extraction(1)
    assert started is not None
    yield started
    stop_pool(started)


@pytest.fixture
def fetch_engine(engine: str) -> Iterator[Any]:
    started = load_engine(engine)(4, Client("test"))
    yield started
    started.close()


def worker(fetch_engine: Any, pool: Pool, site: Site, parse_timeout: float = TIMEOUT) -> JobRunner:
    settings = Settings(limits=Limits(parse_timeout=parse_timeout), allow_private=True, ignore_robots=True)
    scope = Scope.build([site.url], "host", (), ())
    scheduler = Scheduler(Politeness(4, 0.0), settings.user_agent, 8, obey_robots=False)
    guard = AddressGuard(scope.endpoints, allow_private=True)
    return JobRunner(fetch_engine, settings, scope, scheduler, guard, lambda url: False, pool)


def test_a_process_that_dies_costs_its_task_only(fetch_engine: Any, pool: Pool) -> None:
    began = time.monotonic()
    with pytest.raises(TimeoutError, match="no answer in 1 s"):
        fetch_engine.apply(pool, os._exit, (1,), TIMEOUT)  # the process dies with the task
    assert time.monotonic() - began < TIMEOUT + 5
    assert fetch_engine.apply(pool, len, ("abc",), 30.0) == 3  # a new process took its place


def test_a_task_past_its_limit_is_interrupted_and_its_process_goes_on(fetch_engine: Any, pool: Pool) -> None:
    pid = fetch_engine.apply(pool, os.getpid, (), 30.0)
    began = time.monotonic()
    with pytest.raises(TooSlow):
        fetch_engine.apply(pool, run_within, (0.5, time.sleep, 60), 30.0)
    assert time.monotonic() - began < 5
    assert fetch_engine.apply(pool, os.getpid, (), 30.0) == pid  # the same process, free again


def test_a_page_past_the_parse_timeout_is_a_parse_error(fetch_engine: Any, pool: Pool, site_factory: Any) -> None:
    site = site_factory("--pages", "3", "--size", "300000")  # ~30 ms to extract: far over a 1 ms limit
    crawl_worker = worker(fetch_engine, pool, site, parse_timeout=0.001)
    slow = crawl_worker.page(Job(1, site.url, 0))
    assert (slow.response.status, slow.page) == (200, None)
    assert slow.response.error == "parse error: extraction took over 0.001 s"


def test_a_page_whose_extraction_hangs_is_a_parse_error(
    fetch_engine: Any, pool: Pool, site_factory: Any
) -> None:
    site = site_factory("--pages", "3")
    crawl_worker = worker(fetch_engine, pool, site)
    (process,) = pool._pool  # type: ignore[attr-defined]
    os.kill(process.pid, signal.SIGSTOP)
    try:
        hung = crawl_worker.page(Job(1, site.url, 0))
    finally:
        os.kill(process.pid, signal.SIGCONT)
    assert (hung.response.status, hung.page) == (200, None)
    assert hung.response.error == f"parse error: extraction gave no answer in {dead_after(TIMEOUT):g} s"
    again = crawl_worker.page(Job(1, site.url, 0))
    assert again.response.error is None and again.page is not None and again.page.links
