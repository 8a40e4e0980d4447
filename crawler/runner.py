"""The runner: one crawl's life — open the store, start or resume, build the engine, crawl, record the end.

This is the library call behind `crawl [SEEDS]`: the CLI turns options into Settings and calls `start`
or `resume`; everything it prints is a one-line summary or a one-line error. Both handle SIGINT and
SIGTERM from their first line (crawler.stop) and expect the process to exit when they return.
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import json
import os
import signal
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from multiprocessing.pool import Pool

from crawler import distributed
from crawler.crawl import Crawl
from crawler.credentials import Credentials
from crawler.extract.pool import extraction
from crawler.fetch import load_engine
from crawler.fetch.client import client_for, masked_header, notices, quiet_if_insecure
from crawler.fetch.processes import FetchProcesses
from crawler.frontier import Frontier
from crawler.frontier.robots import unshared
from crawler.jobs import RobotsAnswers, robots_limits
from crawler.progress import Progress
from crawler.settings import Settings
from crawler.stop import EXIT_FOR_SIGNAL, HardStop, Stop
from crawler.store.db import StoreError, table_names, without_password
from crawler.store.schema import INTERRUPTED
from crawler.store.sql import Store, open_store
from crawler.urls import Scope, host_of
from crawler.warc import check_path, open_recorder


class NothingToResume(Exception):
    """`crawl` without seeds found no unfinished crawl in the database."""


class CrawlBusy(Exception):
    """The crawl to resume is being worked on by a live process."""


NOTHING_FETCHED = 4  # exit code: no host answered (as wget's 4, "network failure")


@dataclass
class Result:
    crawl_id: int
    status: str
    pages: int
    errors: int
    seconds: float
    stop_signal: int | None = None
    unreachable: int = 0  # pages whose host gave no answer at all

    @property
    def nothing_fetched(self) -> bool:
        """The run ended with pages, and not one of them got an answer from its host."""
        return self.status != INTERRUPTED and self.pages > 0 and self.unreachable == self.pages

    @property
    def exit_code(self) -> int:
        """0; NOTHING_FETCHED when no page got an answer; 130 / 143 / 129 for a crawl a SIGINT / SIGTERM /
        SIGHUP interrupted."""
        if self.status == INTERRUPTED:
            return EXIT_FOR_SIGNAL.get(self.stop_signal or signal.SIGINT, 130)
        return NOTHING_FETCHED if self.nothing_fetched else 0

    def summary(self) -> str:
        rate = self.pages / max(self.seconds, 1e-9)
        return (f"crawl {self.crawl_id} {self.status}: {self.pages} pages, {self.errors} errors "
                f"in {self.seconds:.1f} s ({rate:.1f} pages/s)")


def opened(db: str, stop: Stop, create: bool = True) -> Store:
    """The store at `db`, whose writes stop waiting for a lock once `stop` is requested. A stop while
    it opens (a Ctrl-C while another process holds the lock) ends the process with the signal's code."""
    try:
        return open_store(db, create=create, give_up=stop.requested)
    except StoreError:
        if not stop.requested():
            raise
        print("crawl: stopped while waiting for the database; nothing was written", file=sys.stderr)
        raise SystemExit(stop.exit_code) from None


def start(settings: Settings, seeds: list[str], credentials: Credentials | None = None) -> Result:
    """A new crawl of `seeds` (normalized URLs) into settings.db; with settings.frontier, a crawl shared
    with the `crawl worker` processes that join it (this process is its first worker). `credentials`
    (basic auth by origin) go to this run's engine, and nowhere else: every entry point takes them.

    SIGINT/SIGTERM are handled from here on (see crawler.stop): one arriving before the loop
    starts still ends the crawl `interrupted`, with its seeds queued, ready to resume.
    """
    scope = scope_of(settings, seeds)  # a bad --include fails here, before anything is written
    if settings.frontier:
        distributed.connect(settings.frontier)  # unreachable: one line, before anything is written
    with Stop().installed(exiting=True) as stop, workers(settings, credentials) as hands:
        store = opened(settings.db, stop)  # (while the extraction processes start)
        try:
            if settings.frontier:
                settings = dataclasses.replace(settings, frontier_key=uuid.uuid4().hex)
            crawl_id = store.start_crawl(seeds, stored(settings))
            return _run(settings, store, crawl_id, seeds, scope, stop, credentials, hands)
        finally:
            store.close()


def work(db: str, frontier: str, crawl_id: int | None, overrides: dict[str, object],
         credentials: Credentials | None = None) -> Result:
    """Join crawl `crawl_id` (default: the latest running one) as one more worker, with its saved settings;
    `overrides` are this process's own options (engine, concurrency, parse workers, lease, quiet)."""
    with Stop().installed(exiting=True) as stop:
        store = opened(db, stop, create=False)
        try:
            crawl_id, seeds, settings_json = store.running_crawl(crawl_id)
            settings = with_overrides(Settings.from_json(settings_json), overrides | {"db": db, "frontier": frontier})
            if not settings.frontier_key:
                raise NothingToResume(f"crawl {crawl_id} is not a distributed crawl (it was started without "
                                      "--frontier): resume it with `crawl --db ...`")
            scope = scope_of(settings, seeds)
            with workers(settings, credentials) as hands:
                return _run(settings, store, crawl_id, seeds, scope, stop, credentials, hands)
        finally:
            store.close()


def resume(db: str, overrides: dict[str, object], credentials: Credentials | None = None) -> Result:
    """Resume the latest unfinished crawl in `db`, with its saved settings less `overrides`.

    Jobs a dead or interrupted run had claimed go back to the queue; pages it saved stay done. A crawl
    a live process still works on is not touched (CrawlBusy): its claims are that process's.
    """
    names = table_names(db)  # read-only: a database with no crawls is neither created nor migrated
    if names is not None and "crawls" not in names:
        raise nothing_to_resume(db)
    with Stop().installed(exiting=True) as stop:
        store = opened(db, stop)
        try:
            latest = store.latest_unfinished() or more_pages(store, overrides)
            if latest is None:
                raise nothing_to_resume(db, store)
            crawl_id, seeds, settings_json = latest
            settings = with_overrides(Settings.from_json(settings_json), overrides | {"db": db})
            scope = scope_of(settings, seeds)
            refuse_if_busy(store, crawl_id)
            store.resume(crawl_id)
            store.frontier(crawl_id).recover()
            with workers(settings, credentials) as hands:
                return _run(settings, store, crawl_id, seeds, scope, stop, credentials, hands)
        finally:
            store.close()


def stopped_at_budget(store: Store) -> tuple[int, list[str], str, int, int] | None:
    """The latest crawl, if it finished at its --max-pages with URLs still queued (one process's crawl: a
    shared frontier's queue is not kept): (id, seeds, settings JSON, its --max-pages, URLs queued)."""
    try:
        crawl_id, seeds, settings_json, _ = store.crawl()
    except StoreError:
        return None
    settings = Settings.from_json(settings_json)
    if not settings.max_pages or settings.frontier_key or store.page_count(crawl_id) < settings.max_pages:
        return None
    queued = store.frontier(crawl_id).pending()
    return (crawl_id, seeds, settings_json, settings.max_pages, queued) if queued else None


def more_pages(store: Store, overrides: dict[str, object]) -> tuple[int, list[str], str] | None:
    """The crawl that stopped at its --max-pages, when this resume gives a larger one (or 0): it goes on."""
    stopped = stopped_at_budget(store)
    wanted = overrides.get("max_pages")
    if stopped is None or not isinstance(wanted, int) or 0 < wanted <= stopped[3]:
        return None
    crawl_id, seeds, settings_json, budget, queued = stopped
    print(f"crawl: continuing crawl {crawl_id}, which stopped at --max-pages {budget} with {queued} URLs queued",
          file=sys.stderr)
    return crawl_id, seeds, settings_json


def nothing_to_resume(db: str, store: Store | None = None) -> NothingToResume:
    stopped = stopped_at_budget(store) if store is not None else None
    if stopped is not None:
        crawl_id, _, _, budget, queued = stopped
        return NothingToResume(f"nothing to resume in {without_password(db)}: crawl {crawl_id} stopped at "
                               f"--max-pages {budget} with {queued} URLs queued; give a larger --max-pages "
                               "(or 0) to continue it, or SEEDS to start a crawl")
    return NothingToResume(f"nothing to resume in {without_password(db)}: give SEEDS to start a crawl")


def recrawl(db: str, crawl_id: int | None, overrides: dict[str, object],
            credentials: Credentials | None = None) -> Result:
    """A new crawl with the seeds and settings (less `overrides`) of crawl `crawl_id` (default: the latest)
    that fetches every URL that crawl stored with its validators; a 304 keeps the earlier row's fields.
    Interrupted, it resumes like any crawl (`crawl` without seeds)."""
    with Stop().installed(exiting=True) as stop:
        store = opened(db, stop, create=False)  # (nothing to recrawl in a database that is not there)
        try:
            previous, seeds, settings_json, _ = store.crawl(crawl_id)
            settings = with_overrides(Settings.from_json(settings_json), overrides | {"db": db})
            scope = scope_of(settings, seeds)
            new_id = store.start_crawl(seeds, stored(settings), recrawl_of=previous)
            with workers(settings, credentials) as hands:
                return _run(settings, store, new_id, seeds, scope, stop, credentials, hands)
        finally:
            store.close()


def stored(settings: Settings) -> str:
    """The settings as the crawls row keeps them: no secret (the database's, the proxy's password, a
    credential header's value are masked; a resume names the database on its command line anyway, and
    must give --proxy or --header again for the others, see client_for)."""
    frontier = settings.frontier and without_password(settings.frontier)
    proxy = settings.proxy and without_password(settings.proxy)
    return dataclasses.replace(settings, db=without_password(settings.db), frontier=frontier, proxy=proxy,
                               header=tuple(map(masked_header, settings.header))).to_json()


def with_overrides(settings: Settings, overrides: dict[str, object]) -> Settings:
    """Settings with the options given on the command line put over the saved ones."""
    limits = {k: v for k, v in overrides.items() if hasattr(settings.limits, k)}
    top = {k: v for k, v in overrides.items() if not hasattr(settings.limits, k)}
    data = json.loads(settings.to_json()) | top
    data["limits"] = data["limits"] | limits
    return Settings.from_json(json.dumps(data))


def refuse_if_busy(store: Store, crawl_id: int) -> None:
    live = store.live_runs(crawl_id)
    if live:
        run = live[0]
        raise CrawlBusy(f"crawl {crawl_id} is running in process {run.pid} on {run.host}: "
                        "stop it first, or wait for it to end")


def scope_of(settings: Settings, seeds: list[str]) -> Scope:
    """The crawl's scope, once its settings are known to be runnable (ValueError, one line, if not):
    every caller does this before it writes anything."""
    settings.check()
    check_path(settings.warc)
    client_for(settings)
    return Scope.build(seeds, settings.scope, settings.include, settings.exclude)


def _run(settings: Settings, store: Store, crawl_id: int, seeds: list[str], scope: Scope, stop: Stop,
         credentials: Credentials | None, hands: Hands) -> Result:
    """Work on the crawl as a new run. Its seeds are queued again first (known ones are skipped): a crawl
    whose first run died before queueing them still has a frontier. So are a recrawl's earlier URLs."""
    began = time.monotonic()
    frontier, robots_answers = _frontier(settings, store, crawl_id, seeds, scope)
    frontier.add((url, host_of(url), 0) for url in [*seeds, *settings.sitemap])
    recrawl_of = store.crawl(crawl_id)[3]
    validators = _queue_earlier(store, frontier, recrawl_of)
    sink = store.pages(crawl_id, store.start_run(crawl_id), recrawl_of)
    client = client_for(settings, credentials)
    for notice in notices(client, os.environ):
        print(f"crawl: {notice}", file=sys.stderr)
    quiet_if_insecure(client)
    engine = load_engine(settings.engine)(settings.limits.concurrency, client)
    recorder = open_recorder(settings.warc, settings.warc_max_size, settings.ignore_robots)
    crawl: Crawl | None = None
    try:
        crawl = Crawl(settings, frontier, sink, engine, scope, stop, tap=recorder.tap if recorder else None,
                      validators=validators, robots_answers=robots_answers,
                      seed_redirects=store.seed_redirects(crawl_id), pool=hands.pool,
                      fetchers=hands.fetchers)
        status = crawl.run(Progress.for_terminal(settings.quiet))
    except HardStop:  # a second Ctrl-C / SIGTERM: stop at once; what was not saved is fetched again
        _abandon(crawl, engine)
        status = INTERRUPTED
    finally:
        if recorder is not None:
            recorder.close()
    status = _record_end(store, crawl_id, status, stop, shared=bool(settings.frontier))
    pages, errors = (crawl.tally.pages - crawl.budget_base, crawl.tally.errors) if crawl else (0, 0)
    unreachable = crawl.tally.unreachable if crawl else 0
    return Result(crawl_id, status, pages, errors, time.monotonic() - began, stop.signum, unreachable)


@dataclass
class Hands:
    """The processes a crawl's pages go to: the extraction pool, or fetch processes that extract too."""

    pool: Pool | None = None
    fetchers: FetchProcesses | None = None


@contextlib.contextmanager
def workers(settings: Settings, credentials: Credentials | None) -> Iterator[Hands]:
    """The crawl's extraction processes, started first (their imports overlap the database's opening)
    and stopped when it ends. They fetch their pages too (crawler.fetch.processes) unless the crawl
    asks otherwise (--no-fetch-processes), has none (--parse-workers 0), or records WARC files (one
    writer, in the crawl process, sees every exchange)."""
    if not (settings.fetch_processes and settings.parse_workers > 0 and settings.warc is None):
        with extraction(settings.parse_workers) as pool:
            yield Hands(pool=pool)
        return
    limits = settings.limits
    fetchers = FetchProcesses(settings.parse_workers, client_for(settings, credentials), limits,
                              robots_limits(limits), limits.concurrency)
    atexit.register(fetchers.close)  # before multiprocessing's own exit hook, which would wait forever
    try:
        yield Hands(fetchers=fetchers)
    finally:
        fetchers.close()


def _frontier(settings: Settings, store: Store, crawl_id: int, seeds: list[str], scope: Scope
              ) -> tuple[Frontier, RobotsAnswers]:
    """The crawl's frontier in its database, or the one its workers share in Redis."""
    if not settings.frontier:
        return store.frontier(crawl_id), unshared
    return distributed.join(settings, store, crawl_id, seeds, scope)


def _queue_earlier(store: Store, frontier: Frontier, recrawl_of: int | None) -> dict[str, dict[str, str]]:
    """A recrawl's frontier gets every URL the earlier crawl stored (known ones are skipped); the
    validators to send, by URL."""
    if recrawl_of is None:
        return {}
    earlier = store.earlier_urls(recrawl_of)
    frontier.add((url, host_of(url), depth) for url, depth, _ in earlier)
    return {url: headers for url, _, headers in earlier if headers}


def _record_end(store: Store, crawl_id: int, status: str, stop: Stop, shared: bool = False) -> str:
    """Record the crawl's status at its end and return it. A stop asked for while the database is locked
    does not wait for the lock: the crawl stays `running`, which resumes the same, and ends interrupted
    (even a crawl that had just finished: its resume finds nothing left and records it finished).
    A shared crawl is marked finished by the first worker that finds it so, and an interrupted worker
    leaves it running: the other workers go on."""
    try:
        if shared:
            if status != INTERRUPTED:
                store.finish_once(crawl_id)
            return status
        store.finish_crawl(crawl_id, status)
    except StoreError:
        if not stop.requested():
            raise
        return INTERRUPTED
    return status


def _abandon(crawl: Crawl | None, engine: object) -> None:
    """Close what a hard stop left open (bounded; the watchdog armed by Stop ends us if it is not)."""
    if crawl is not None:
        crawl.close()
    else:
        engine.close()  # type: ignore[attr-defined]
