"""The crawl loop, the one place the pieces meet: frontier -> scheduler -> engine -> sink -> frontier.

Runs on the main thread (or the main greenlet) and takes its backends as Protocols: a Frontier
(crawler.frontier), a Sink (crawler.store) and an Engine (crawler.fetch.base); it never knows whether
they are SQLite, PostgreSQL, Redis or fakes. The clock is an argument too. Outcomes are batched; a
flush writes, in this order, each step idempotent so a crash between two is healed by a redo:
the links found (frontier.add), the pages (sink.save), the jobs settled (frontier.done).
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from multiprocessing.pool import Pool

from crawler import testhook
from crawler.discovery import Discovery, HostBudget
from crawler.fetch.base import FetchEngine
from crawler.fetch.guard import AddressGuard
from crawler.fetch.http import Tap
from crawler.fetch.processes import FetchProcesses
from crawler.frontier import Frontier
from crawler.frontier.robots import unshared
from crawler.jobs import JobRunner, RobotsAnswers, RobotsResult
from crawler.politeness import Politeness
from crawler.progress import Progress
from crawler.records import UNREACHABLE, FetchEnded, Job, Outcome, Response, error_kind
from crawler.scheduler import Scheduler
from crawler.settings import Settings
from crawler.stop import Stop
from crawler.store import Sink
from crawler.store.db import StoreError
from crawler.store.saver import SaveFailed, Saver
from crawler.urls import Scope, host_of

BATCH_SIZE = 200  # outcomes per write
BATCH_SECONDS = 0.5  # ... or this old, whichever comes first
AHEAD = 8  # jobs claimed ahead per request in flight: enough to feed the engine while a batch is saved
STOP_GRACE = 5.0  # seconds in-flight requests get to finish after Ctrl-C / SIGTERM
DRY_SECONDS = 1.0  # a claim that came back short is not tried again for this long while nothing changed
RENEW_SECONDS = 1.0  # how often the leases of held jobs are renewed (a frontier of one process: a no-op)
IDLE_WAIT = 0.25  # seconds between two looks at a frontier other processes still work on
Clock = Callable[[], float]


@dataclass
class Tally:
    pages: int = 0
    errors: int = 0
    unreachable: int = 0  # this run's pages whose host gave no answer (timeout, connection, DNS, TLS)
    claimed: int = 0  # jobs taken from the frontier by this run


@dataclass
class Batch:
    """Outcomes not yet written, and the claimed jobs not yet settled (given back if the crawl stops)."""

    outcomes: list[Outcome] = field(default_factory=list)
    held: set[Job] = field(default_factory=set)
    landed: list[Job] = field(default_factory=list)  # parked jobs a redirect chain's outcome settled
    fetched: list[tuple[Job, float]] = field(default_factory=list)  # (job, rest): to release, see _release


class Crawl:
    def __init__(self, settings: Settings, frontier: Frontier, sink: Sink, engine: FetchEngine, scope: Scope,
                 stop: Stop | None = None, clock: Clock = time.monotonic, tap: Tap | None = None,
                 validators: Mapping[str, Mapping[str, str]] | None = None,
                 robots_answers: RobotsAnswers = unshared, seed_redirects: Sequence[tuple[str, str]] = (),
                 pool: Pool | None = None, fetchers: FetchProcesses | None = None):
        limits = settings.limits
        self.settings, self.frontier, self.sink, self.engine, self.clock = settings, frontier, sink, engine, clock
        politeness = Politeness(limits.per_host, limits.delay)
        self.scheduler = Scheduler(politeness, settings.user_agent, AHEAD * limits.concurrency,
                                   obey_robots=not settings.ignore_robots)
        self.guard = guard = AddressGuard(scope.endpoints, settings.allow_private)
        self.stop = stop or Stop()
        self.progress = Progress(enabled=False)
        self.jobs = JobRunner(engine, settings, scope, self.scheduler, guard, frontier.is_known, pool, tap,
                              validators, robots_answers, fetchers)
        self.tally = Tally(pages=sink.count())  # what a resumed crawl already has
        self.budget_base = self.tally.pages
        self.discovery = Discovery(scope, settings.max_depth, limits.max_url_length, self._host_budget(),
                                   obey_nofollow=not settings.ignore_robots, max_redirects=limits.max_redirects)
        for seed, target in seed_redirects:  # (an earlier run's: their hosts are seed hosts again)
            self._adopt(seed, target)
        self.batch = Batch()
        self.saver = Saver(sink)
        self.parked: dict[str, Job] = {}  # url -> claimed job held back while a redirect chain fetches it
        self.landing: Counter[str] = Counter()  # where the chains of outcomes not yet settled ended
        self.last_flush = self.last_renew = clock()
        self.in_flight = 0
        self.fetching: set[Job] = set()  # jobs submitted whose request has not ended: their host's slot is taken
        self.closed = False
        self.dry: tuple[frozenset[str], float] | None = None  # (crowded hosts, when) after a short claim

    def _host_budget(self) -> HostBudget:
        """--max-pages-per-host, counting what the frontier already holds (a resumed crawl's earlier runs)."""
        budget = HostBudget(self.settings.max_pages_per_host)
        if budget.limit > 0:
            for url, host in self.frontier.known():
                budget.note(url, host)
        return budget

    @property
    def stop_signal(self) -> int | None:
        """The signal that stopped the crawl (SIGINT, SIGTERM or SIGHUP), if one did."""
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
                    self._show_progress(now=True)  # the frontier's last count, while it is there to ask
                    return "finished"
                self._wind_down()
                return "interrupted"
        finally:
            self.close()

    def _loop(self) -> None:
        concurrency = self.settings.limits.concurrency
        while self.stop_signal is None:
            self._refill()
            if self.discovery.found and len(self.scheduler) < concurrency:
                self.flush()  # running low on work: make what was discovered claimable now
                self._refill()
            if self.in_flight < concurrency:  # backpressure: the engine's queue is bounded
                self._dispatch(self.clock())
            if not self.in_flight and not len(self.scheduler) and self._idle():
                return
            self._collect(self._wait_time())
            self._release()
            self._settle(wait=False)
            if self._flush_due():
                self.flush()
            self._renew()
            if not self.saver.busy:  # (a heartbeat writes too)
                self.sink.alive()
            self._show_progress()

    def _show_progress(self, now: bool = False) -> None:
        self.progress.update(self.tally.pages, self.tally.errors, self.frontier.pending,
                             self.scheduler.robots_pending, now)

    def _idle(self) -> bool:
        """Nothing in hand: whether the crawl is over for this process. It is when the page budget is spent
        or the frontier holds nothing queued or claimed by anyone; while other processes still hold
        claims (whose links may queue more, or whose leases may expire and come back), it waits."""
        self.flush(wait=True)
        self.dry = None  # the last look before the end is a real one
        self._refill()
        if len(self.scheduler):
            return False
        return self._budget_left() <= 0 or self.frontier.pending() == 0

    def _refill(self) -> None:
        room = min(self.scheduler.room(), self._budget_left())
        fed = len(self.scheduler) >= self.settings.limits.concurrency
        if room <= 0 or (fed and room < self.scheduler.capacity // 4):
            return  # claim in batches while the buffer still feeds the engine: a claim costs index probes
        if self.saver.busy and (len(self.scheduler) or self.in_flight):
            return  # a claim writes: not beside a save, while there is work in hand (see flush)
        self._settle(wait=True)
        per_host = self.scheduler.host_share(2 * self.settings.limits.per_host)
        if self._still_dry(self.scheduler.crowded_hosts(per_host // 2)):
            return
        crowded = self.scheduler.crowded_hosts(per_host)
        jobs = self.frontier.claim(room, crowded, per_host)
        self.tally.claimed += len(jobs)
        self.batch.held.update(jobs)
        for job in jobs:
            self.discovery.budget.note(job.url, host_of(job.url))
        self.scheduler.add(self._unless_followed(jobs))
        if jobs:
            testhook.reached("after-claim")
        short = len(jobs) < room
        self.dry = (frozenset(self.scheduler.crowded_hosts(per_host) | crowded), self.clock()) if short else None

    def _still_dry(self, busy: set[str]) -> bool:
        """Whether the last claim came back short and nothing since could make this one longer: every
        host it left crowded still has half its share buffered or in flight (so a host is claimed for
        in batches, not after each page), nothing new was queued for another host (by this process;
        others' additions are seen after DRY_SECONDS). This spares a frontier scan per loop
        pass while one big host is crowded."""
        if self.dry is None:
            return False
        hosts, when = self.dry
        return busy >= hosts and self.clock() - when < DRY_SECONDS

    def _all_crowded(self, entries: Sequence[tuple[str, str, int]]) -> bool:
        """Whether every entry is of a host the last short claim left crowded: queueing them can't make
        the next claim longer (a one-host crawl's links, while the host is crowded)."""
        return self.dry is not None and all(host in self.dry[0] for _, host, _ in entries)

    def _unless_followed(self, jobs: list[Job]) -> list[Job]:
        """The jobs, less those for a URL a redirect chain in flight is fetching in place: parked until
        that chain's outcome arrives (see _unpark). It stays claimed meanwhile, so a crash loses nothing."""
        following, kept = self.jobs.following, []
        for job in jobs:
            if job.url in following:
                self.parked[job.url] = job
            elif job.url in self.landing:  # a chain in hand ended there: settled as landed, not fetched
                self._land(job)
            else:
                kept.append(job)
        return kept

    def _budget_left(self) -> int:
        if not self.settings.max_pages:
            return 1 << 30
        return self.settings.max_pages - self.budget_base - self.tally.claimed

    def _dispatch(self, now: float) -> None:
        ready = self.scheduler.take(now)
        for origin in ready.robots:
            self.in_flight += 1
            self.engine.submit(self.jobs.robots, origin)
        for job in ready.fetch:
            self.in_flight += 1
            self.fetching.add(job)
            self.engine.submit(self.jobs.page, job)
        for job, reason in ready.refused:
            self._record(Outcome(job, Response(job.url, job.url, error=reason)))
            self.batch.fetched.append((job, 0.0))

    def _wait_time(self) -> float:
        if self.in_flight >= self.settings.limits.concurrency or not len(self.scheduler):
            return IDLE_WAIT
        return min(max(self.scheduler.wait_time(self.clock()), 0.005), 0.25)

    def _collect(self, timeout: float) -> None:
        for item in self.engine.results(timeout):
            if isinstance(item, FetchEnded):  # (not a result: the job runs on, extracting)
                self._fetch_ended(item.job, item.status, item.elapsed_ms)
                continue
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
                                 result.refusal)
        if not self.settings.no_sitemaps:  # named sitemaps are queued like seeds; scope and traps apply
            self.discovery.urls(self.jobs.sitemaps.named(result.rules.sitemaps()), 0)
        self._finished(host, result.response.status, result.response.elapsed_ms)

    def _fetch_ended(self, job: Job, status: int | None, elapsed_ms: int) -> None:
        """Free the job's host slot once: when the worker tells the request ended, or else (refused by the
        address guard, a bug, an engine that doesn't tell) when its outcome arrives."""
        if job in self.fetching:
            self.fetching.remove(job)
            self._finished(host_of(job.url), status, elapsed_ms)

    def _page_done(self, outcome: Outcome) -> None:
        host = host_of(outcome.job.url)
        self._fetch_ended(outcome.job, outcome.response.status, outcome.response.elapsed_ms)
        if outcome.job.depth == 0 and outcome.response.redirect_left:
            self._adopt(outcome.job.url, outcome.response.redirect_left)
        self.batch.fetched.append((outcome.job, self.scheduler.politeness.delay_of(host)))
        self._record(outcome)
        if outcome.response.followed_to:
            self.landing[outcome.response.followed_to] += 1
        if outcome.followed:
            self.jobs.following.release(outcome.followed)
            self._unpark(outcome)

    def _adopt(self, seed: str, target: str) -> None:
        """A seed redirected to another host (http://python.org/ -> https://www.python.org/) or port: that
        host becomes a seed host, in scope and trusted like one on the target's port (see
        AddressGuard.adopt), as wget and Scrapy behave; otherwise the crawl would end at the redirect."""
        host = host_of(target)
        if not self.guard.adopt(target, seed):
            return
        self.jobs.share_guard()
        if host not in self.discovery.scope.hosts:
            self.discovery.scope = self.jobs.scope = self.discovery.scope.with_host(host)

    def _unpark(self, outcome: Outcome) -> None:
        """Jobs parked behind this outcome's redirect chain: the one the chain ended on successfully is
        settled with it (its URL lands, see flush); any other is fetched."""
        response = outcome.response
        for url in outcome.followed:
            job = self.parked.pop(url, None)
            if job is None:
                continue
            if url == response.followed_to:
                self._land(job)
            else:
                self.scheduler.add([job])

    def _land(self, job: Job) -> None:
        """A claimed job whose URL a redirect chain fetched in place: settled with the batch, as landed."""
        self.tally.claimed -= 1  # no page row of its own: --max-pages may still use its place
        self.batch.landed.append(job)
        self.batch.fetched.append((job, 0.0))

    def _finished(self, host: str, status: int | None, elapsed_ms: int) -> None:
        """Free the host's slot. A busy engine may have sent the request well after the scheduler let it
        start: now - elapsed is no earlier than when it went out, and politeness counts from there."""
        now = self.clock()
        self.scheduler.politeness.finished(host, now, status, sent=now - elapsed_ms / 1000)

    def _record(self, outcome: Outcome) -> None:
        self.batch.outcomes.append(outcome)
        self.discovery.outcome(outcome)
        self.tally.pages += 1
        error = outcome.response.error
        self.tally.errors += error is not None
        self.tally.unreachable += error is not None and error_kind(error) in UNREACHABLE

    # -- leases ----------------------------------------------------------------------------------

    def _release(self) -> None:
        """Tell the frontier which fetches ended, with the rest each host needs (its delay, Crawl-delay,
        429 backoff): a frontier shared by many processes schedules the host for all of them."""
        if self.batch.fetched:
            fetched, self.batch.fetched = self.batch.fetched, []
            self.frontier.release(fetched)

    def _renew(self) -> None:
        """Keep the held jobs' leases; jobs whose lease was lost (this process stalled past it) are
        dropped: another process redoes them, and the store keeps one page per URL whoever saves it."""
        if self.clock() - self.last_renew < RENEW_SECONDS:
            return
        self.last_renew = self.clock()
        lost = self.frontier.renew(self.batch.held)
        if lost:
            self.batch.held.difference_update(lost)
            print(f"crawl: {len(lost)} claims expired while this process was stalled; others redo them",
                  file=sys.stderr)

    # -- writing ---------------------------------------------------------------------------------

    def _flush_due(self) -> bool:
        return len(self.batch.outcomes) >= BATCH_SIZE or self.clock() - self.last_flush >= BATCH_SECONDS

    def flush(self, wait: bool = False) -> None:
        """Links first, then pages, then the jobs settled: a crash between two steps leaves jobs claimed,
        which a resume (or a lease's expiry) redoes; the page is stored once whatever the redo finds. The
        pages are saved on the saver's thread while the loop goes on, and their jobs settled by _settle
        once they are stored (at once with `wait`). Leases are renewed first: after a stall, the jobs
        about to be settled are the ones whose loss is to be told."""
        self._settle(wait=True)  # one batch saved at a time
        self._renew()
        found = self.discovery.take()
        if self.frontier.add(found.new) and not self._all_crowded(found.new):
            self.dry = None
        self.frontier.lower_depth(found.shallower)
        if self.batch.outcomes or self.batch.landed:
            testhook.reached("after-links")
            self.saver.begin(self.batch.outcomes, self.batch.landed)
            self.batch.outcomes, self.batch.landed = [], []
            self._settle(wait)
        self.last_flush = self.clock()

    def _settle(self, wait: bool) -> None:
        """Settle the jobs of the batch saved, once its save has ended (see flush). The outcomes of a save
        that failed go back to the batch, not saved, and its StoreError is raised."""
        try:
            saved = self.saver.finish(wait)
        except SaveFailed as failed:
            self.batch.outcomes[:0], self.batch.landed[:0] = failed.outcomes, failed.parked
            raise failed.error from None
        if saved is None:
            return
        outcomes, parked = saved
        testhook.reached("after-commit")
        landed = [(o.response.followed_to, host_of(o.response.followed_to), o.job.depth)
                  for o in outcomes if o.response.followed_to]
        self.landing -= Counter(url for url, _, _ in landed)
        jobs = [o.job for o in outcomes] + parked
        earlier = set(self.frontier.done(jobs, landed))
        testhook.reached("after-ack")
        if earlier:  # the frontier was rebuilt since their claim, maybe without their links
            self.frontier.add(self.discovery.again([o for o in outcomes if o.job in earlier]))
        self.batch.held.difference_update(jobs)

    # -- stopping --------------------------------------------------------------------------------

    def _wind_down(self) -> None:
        """Let in-flight requests finish for a few seconds, save what arrived, and give back the rest."""
        self.scheduler.drain()
        deadline = self.clock() + STOP_GRACE
        while self.in_flight and self.clock() < deadline:
            self._collect(0.1)
        self._last_save()

    def _last_save(self) -> None:
        """Save what arrived and give back the jobs not done. A locked database is not waited for
        (runner.py makes the store give up once a stop is asked for): what is not saved stays claimed,
        and is fetched again on resume."""
        try:
            self.flush(wait=True)
            self.frontier.give_back(sorted(self.batch.held, key=lambda job: job.id))
        except StoreError as error:
            print(f"crawl: {len(self.batch.outcomes)} pages not saved ({error}); a resume fetches them again",
                  file=sys.stderr)

    def close(self) -> None:
        """Stop the engine, in bounded time, and end the run's record; safe to call twice. (The extraction
        processes are the caller's to stop.)"""
        self.engine.close()
        self.progress.close()
        self.saver.join()
        if not self.closed:
            self.closed = True
            try:
                self.sink.close()
            except StoreError as error:
                print(f"crawl: the run's end is not recorded ({error})", file=sys.stderr)
