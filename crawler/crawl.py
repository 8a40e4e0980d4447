"""The crawl loop, the one place the pieces meet: frontier -> scheduler -> engine -> store -> frontier.

Runs on the main thread (or the main greenlet). It is the only writer: outcomes are batched and
saved with their discovered links and frontier transitions in one transaction.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from crawler.fetch.guard import AddressGuard
from crawler.frontier.sql import SqlFrontier
from crawler.politeness import Politeness
from crawler.pool import start_extraction, stop_pool
from crawler.progress import Progress
from crawler.records import Job, Outcome, Response
from crawler.scheduler import HostBudget, Scheduler
from crawler.settings import Settings
from crawler.stop import Stop
from crawler.store import Store, StoreError
from crawler.urls import Scope, host_of, trap_reason
from crawler.worker import RobotsResult, Worker

BATCH_SIZE = 200  # outcomes per write transaction
BATCH_SECONDS = 0.5  # ... or this old, whichever comes first
SEEN_MAX = 100_000  # discovered URLs remembered to skip repeats before any check (then forgotten at once)
REFUSED = -1  # in `seen`: a URL out of scope, a trap, or over its host's budget
STOP_GRACE = 5.0  # seconds in-flight requests get to finish after Ctrl-C / SIGTERM


@dataclass
class Tally:
    pages: int = 0
    errors: int = 0
    claimed: int = 0  # jobs taken from the frontier by this run
    started: float = field(default_factory=time.monotonic)

    def rate(self) -> float:
        return self.pages / max(time.monotonic() - self.started, 1e-9)


class Crawl:
    def __init__(self, settings: Settings, store: Store, crawl_id: int, scope: Scope, engine: Any,
                 stop: Stop | None = None):
        limits = settings.limits
        self.settings, self.store, self.crawl_id, self.engine = settings, store, crawl_id, engine
        self.frontier = SqlFrontier(store.engine, crawl_id)
        self.scope = scope
        politeness = Politeness(limits.per_host, limits.delay)
        self.scheduler = Scheduler(politeness, settings.user_agent, 2 * limits.concurrency,
                                   obey_robots=not settings.ignore_robots)
        guard = AddressGuard(scope.hosts, settings.allow_private)
        self.stop = stop or Stop()
        self.progress = Progress(enabled=False)
        self.pool = start_extraction(settings.parse_workers)
        self.worker = Worker(engine, settings, self.scope, self.scheduler, guard, self.frontier.is_known,
                             self.pool)
        self.tally = Tally(pages=store.page_count(crawl_id))  # what a resumed crawl already has
        self.budget_base = self.tally.pages
        self.host_budget = self._host_budget()
        self.batch: list[Outcome] = []
        self.discovered: list[tuple[str, str, int]] = []  # (url, host, depth) to queue
        self.shallower: list[tuple[str, int]] = []  # (url, depth) found again by a shorter path
        self.parked: dict[str, Job] = {}  # url -> claimed job held back while a redirect chain fetches it
        self.seen: dict[str, int] = {}  # url -> least depth, or REFUSED. A cache: the frontier dedups
        self.last_flush = time.monotonic()
        self.in_flight = 0

    def _host_budget(self) -> HostBudget:
        """--max-pages-per-host, counting what the frontier already holds (a resumed crawl's earlier runs)."""
        budget = HostBudget(self.settings.max_pages_per_host)
        if budget.limit > 0:
            for url, host in self.frontier.known():
                budget.note(url, host)
        return budget

    @property
    def stop_signal(self) -> int | None:
        """The signal that stopped the crawl (SIGINT or SIGTERM), if one did."""
        return self.stop.signum

    # -- the loop -------------------------------------------------------------------------------

    def run(self, progress: Progress) -> str:
        """Crawl until the frontier is empty, the page budget is spent, or a signal arrives."""
        self.progress = progress
        try:
            with self.stop.installed():
                try:
                    self._loop()
                except StoreError:
                    if self.stop_signal is None:
                        raise  # (stopping: a locked database is not waited for, see _last_save)
                if self.stop_signal is None:
                    return "finished"
                self._wind_down()
                return "interrupted"
        finally:
            self.close()

    def _loop(self) -> None:
        while self.stop_signal is None:
            self._refill()
            if self.discovered and len(self.scheduler) < self.settings.limits.concurrency:
                self.flush()  # running low on work: make what was discovered claimable now
                self._refill()
            if self.in_flight < self.settings.limits.concurrency:  # backpressure: the engine's queue is bounded
                self._dispatch(time.monotonic())
            if not self.in_flight and not len(self.scheduler):
                self.flush()
                self._refill()
                if not len(self.scheduler):
                    return
            self._collect(self._wait_time())
            if self._flush_due():
                self.flush()

    def _refill(self) -> None:
        room = min(self.scheduler.room(), self._budget_left())
        fed = len(self.scheduler) >= self.settings.limits.concurrency
        if room <= 0 or (fed and room < self.scheduler.capacity // 4):
            return  # claim in batches while the buffer still feeds the engine: a claim costs a window scan
        per_host = 2 * self.settings.limits.per_host
        jobs = self.frontier.claim(room, self.scheduler.crowded_hosts(per_host), per_host)
        self.tally.claimed += len(jobs)
        for job in jobs:
            self.host_budget.note(job.url, host_of(job.url))
        self.scheduler.add(self._unless_followed(jobs))

    def _unless_followed(self, jobs: list[Job]) -> list[Job]:
        """The jobs, less those for a URL a redirect chain in flight is fetching in place: parked until
        that chain's outcome arrives (see _unpark). It stays claimed meanwhile, so a crash loses nothing."""
        following = self.worker.following
        for job in jobs:
            if job.url in following:
                self.parked[job.url] = job
        return [job for job in jobs if job.url not in self.parked]

    def _budget_left(self) -> int:
        if not self.settings.max_pages:
            return 1 << 30
        return self.settings.max_pages - self.budget_base - self.tally.claimed

    def _dispatch(self, now: float) -> None:
        ready = self.scheduler.take(now)
        for origin in ready.robots:
            self._submit(self.worker.robots, origin)
        for job in ready.fetch:
            self._submit(self.worker.page, job)
        for job, reason in ready.refused:
            self._record(Outcome(job, Response(job.url, job.url, error=reason)))

    def _submit(self, fn: Callable[[Any], Any], arg: Any) -> None:
        self.in_flight += 1
        self.engine.submit(fn, arg)

    def _wait_time(self) -> float:
        if self.in_flight >= self.settings.limits.concurrency or not len(self.scheduler):
            return 0.25
        return min(max(self.scheduler.wait_time(time.monotonic()), 0.005), 0.25)

    def _collect(self, timeout: float) -> None:
        for item in self.engine.results(timeout):
            self.in_flight -= 1
            if isinstance(item, RobotsResult):
                self._robots_done(item)
            elif isinstance(item, Outcome):
                self._page_done(item)
            else:
                raise TypeError(f"worker failed: {item!r}")

    def _robots_done(self, result: RobotsResult) -> None:
        host = host_of(result.origin)
        # rules first: finished() forgets an idle slot, and Crawl-delay must count from this request's start
        self.scheduler.set_rules(result.origin, result.rules, self.settings.limits.max_crawl_delay,
                                 result.problem)
        self._finished(host, result.response)

    def _page_done(self, outcome: Outcome) -> None:
        self._finished(host_of(outcome.job.url), outcome.response)
        self._record(outcome)
        if outcome.followed:
            self.worker.following.release(outcome.followed)
            self._unpark(outcome)

    def _unpark(self, outcome: Outcome) -> None:
        """Jobs parked behind this outcome's redirect chain: the one the chain ended on successfully is
        done with it (its frontier row turns done with the chain's page row); any other is fetched."""
        response = outcome.response
        for url in outcome.followed:
            job = self.parked.pop(url, None)
            if job is None:
                continue
            if url == response.followed_to:
                self.tally.claimed -= 1  # no page row of its own: --max-pages may still use its place
            else:
                self.scheduler.add([job])

    def _finished(self, host: str, response: Response) -> None:
        """Free the host's slot. A busy engine may have sent the request well after the scheduler let it
        start: now - elapsed is no earlier than when it went out, and politeness counts from there."""
        now = time.monotonic()
        self.scheduler.politeness.finished(host, now, response.status, sent=now - response.elapsed_ms / 1000)

    def _record(self, outcome: Outcome) -> None:
        self.batch.append(outcome)
        self._discover(outcome)
        self.tally.pages += 1
        self.tally.errors += outcome.response.error is not None
        self.progress.update(self.tally.pages, self.tally.errors, self.tally.rate(), len(self.scheduler))

    def _discover(self, outcome: Outcome) -> None:
        """Links (and a redirect target not followed in place) worth queueing. A redirect that ended in an
        error (a loop, too many hops) queues nothing: its chain must not be re-entered as a new job."""
        depth = outcome.job.depth + 1
        response = outcome.response
        if response.redirect_left:
            self._keep([response.redirect_left], outcome.job.depth)
        if outcome.page and self._depth_ok(depth):
            self._keep([link.url for link in outcome.page.links], depth)

    def _depth_ok(self, depth: int) -> bool:
        return self.settings.max_depth is None or depth <= self.settings.max_depth

    def _keep(self, urls: list[str], depth: int) -> None:
        """Queue the new URLs in scope; a URL seen before at a greater depth gets this one if still queued
        (with concurrency a longer path can be found first: --max-depth must count the shortest)."""
        for url in urls:
            known = self.seen.get(url)
            if known is None:
                self._admit(url, depth)
            elif depth < known:
                self.seen[url] = depth
                self.shallower.append((url, depth))

    def _admit(self, url: str, depth: int) -> None:
        if len(self.seen) >= SEEN_MAX:
            self.seen.clear()
        self.seen[url] = REFUSED
        if self.scope.allows(url) and trap_reason(url, self.settings.limits.max_url_length) is None:
            host = host_of(url)
            if self.host_budget.admit(url, host):  # --max-pages-per-host
                self.seen[url] = depth
                self.discovered.append((url, host, depth))

    # -- writing ---------------------------------------------------------------------------------

    def _flush_due(self) -> bool:
        return len(self.batch) >= BATCH_SIZE or time.monotonic() - self.last_flush >= BATCH_SECONDS

    def flush(self) -> None:
        if self.batch or self.discovered or self.shallower:
            self.store.save(self.crawl_id, self.batch, self.discovered, self.shallower)
            self.batch, self.discovered, self.shallower = [], [], []
        self.last_flush = time.monotonic()

    # -- stopping --------------------------------------------------------------------------------

    def _wind_down(self) -> None:
        """Let in-flight requests finish for a few seconds, then save what arrived.

        Jobs still buffered or in flight stay 'claimed' in the frontier; resume puts them back.
        """
        self.scheduler.drain()
        deadline = time.monotonic() + STOP_GRACE
        while self.in_flight and time.monotonic() < deadline:
            self._collect(0.1)
        self._last_save()

    def _last_save(self) -> None:
        """Save what arrived. A locked database is not waited for (runner.py makes the store give up
        once a stop is asked for): what is not saved stays claimed, and is fetched again on resume."""
        try:
            self.flush()
        except StoreError as error:
            print(f"crawl: {len(self.batch)} pages not saved ({error}); a resume fetches them again",
                  file=sys.stderr)

    def close(self) -> None:
        """Stop the engine and the extraction processes, in bounded time; safe to call twice."""
        self.engine.close()
        if self.pool is not None:
            stop_pool(self.pool)
            self.pool = None
        self.progress.close()
