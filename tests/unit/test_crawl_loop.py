"""The crawl loop alone, on in-memory fakes: a MemoryFrontier, a MemorySink, an engine that answers by
itself from a table of pages, and a clock that is a number the engine moves. No network, no database,
no sleeps: what the loop decides (what is fetched, stored, settled, given back, and when) is checked."""

from __future__ import annotations

import heapq
import itertools
import signal
import threading
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field

import pytest

from crawler.crawl import Crawl
from crawler.frontier import MemoryFrontier
from crawler.jobs import RobotsResult
from crawler.progress import Progress
from crawler.records import FetchEnded, Job, Link, Outcome, Page, Response
from crawler.robots import ALLOW_ALL
from crawler.settings import Limits, Settings
from crawler.store import MemorySink
from crawler.urls import Scope, host_of

# A site as a table: url -> its links. Every page takes LATENCY seconds of the fake clock.
SITE = {
    "http://a.test/": ["http://a.test/1", "http://a.test/2", "http://b.test/", "http://out.test/"],
    "http://a.test/1": ["http://a.test/3", "http://a.test/"],
    "http://a.test/2": ["http://a.test/3", "http://a.test/4"],
    "http://a.test/3": [],
    "http://a.test/4": ["http://a.test/5"],
    "http://a.test/5": [],
    "http://b.test/": ["http://b.test/1", "http://a.test/1"],
    "http://b.test/1": [],
}
SEEDS = ["http://a.test/", "http://b.test/"]
LATENCY = 0.2
STALL = 10.0


@dataclass
class Clock:
    now: float = 0.0

    def __call__(self) -> float:
        return self.now


@dataclass
class TableEngine:
    """Answers each submitted job from SITE after LATENCY seconds of `clock`; records when each started.
    With `extracting` seconds, a page's request ends (FetchEnded) after LATENCY and its Outcome comes that
    much later, as when extraction runs after the fetch."""

    clock: Clock
    stop_after: int | None = None  # results handed out before it "presses Ctrl-C"
    extracting: float = 0.0
    stall_after: int | None = None  # results handed out before the process "stalls" (SIGSTOP) for STALL
    crawl: Crawl | None = None
    due: list[tuple[float, int, object]] = field(default_factory=list)
    starts: list[tuple[float, str]] = field(default_factory=list)  # (time, url) of every page fetch
    handed: int = 0
    _order: itertools.count = field(default_factory=itertools.count)

    def submit(self, fn: Callable[[object], object], arg: object) -> None:
        answer, ended = self._answer(arg), self.clock.now + LATENCY
        if self.extracting and isinstance(answer, Outcome):
            heapq.heappush(self.due, (ended, next(self._order), FetchEnded(answer.job, 200, int(LATENCY * 1000))))
            ended += self.extracting
        heapq.heappush(self.due, (ended, next(self._order), answer))

    def _answer(self, arg: object) -> object:
        if isinstance(arg, str):  # an origin: its robots.txt allows all
            return RobotsResult(arg, ALLOW_ALL, Response(arg + "/robots.txt", arg + "/robots.txt", 404))
        assert isinstance(arg, Job)
        self.starts.append((self.clock.now, arg.url))
        response = Response(arg.url, arg.url, 200, {"content-type": "text/html"}, b"",
                            elapsed_ms=int(LATENCY * 1000))
        links = [Link(url, "") for url in SITE[arg.url]]
        return Outcome(arg, response, Page(title=arg.url, links=links))

    def results(self, timeout: float) -> list[object]:
        if self.stop_after is not None and self.handed >= self.stop_after and self.crawl is not None:
            self.crawl.stop.signum = signal.SIGINT
        if self.stall_after is not None and self.handed >= self.stall_after:
            self.clock.now += STALL  # every request in flight ended meanwhile
            self.stall_after = None
        if not self.due or self.due[0][0] > self.clock.now + timeout:
            self.clock.now += timeout
            return []
        self.clock.now = max(self.clock.now, self.due[0][0])
        ready = []
        while self.due and self.due[0][0] <= self.clock.now:
            ready.append(heapq.heappop(self.due)[2])
        self.handed += len(ready)
        return ready

    def close(self) -> None:
        self.due.clear()

    def session(self) -> object:
        raise AssertionError("the table engine never runs the submitted functions")

    def apply(self, *args: object) -> object:
        raise AssertionError("the table engine never runs the submitted functions")

    def aside(self, *args: object) -> object:
        raise AssertionError("the table engine never runs the submitted functions")


@dataclass
class CountingFrontier(MemoryFrontier):
    claims: int = 0
    empty: int = 0  # claims that returned nothing

    def claim(self, n: int, exclude_hosts: Collection[str] = (), per_host: int = 0) -> list[Job]:
        self.claims += 1
        jobs = super().claim(n, exclude_hosts, per_host)
        self.empty += not jobs
        return jobs


def crawl(settings: Settings, stop_after: int | None = None,
          extracting: float = 0.0) -> tuple[str, CountingFrontier, MemorySink, TableEngine]:
    clock = Clock()
    frontier, sink, engine = CountingFrontier(), MemorySink(), TableEngine(clock, stop_after, extracting=extracting)
    frontier.add((url, host_of(url), 0) for url in SEEDS)
    loop = Crawl(settings, frontier, sink, engine, Scope.build(SEEDS, "host"), clock=clock)
    engine.crawl = loop
    status = loop.run(Progress(enabled=False))
    return status, frontier, sink, engine


def settings(**kwargs: object) -> Settings:
    limits = {k: kwargs.pop(k) for k in ("concurrency", "per_host", "delay") if k in kwargs}
    return Settings(limits=Limits(**{"concurrency": 4, "per_host": 2, **limits}), parse_workers=0, **kwargs)


def test_every_page_in_scope_is_fetched_and_stored_once() -> None:
    status, frontier, sink, engine = crawl(settings())
    assert status == "finished"
    assert sorted(sink.stored) == sorted(SITE)  # out.test is out of scope
    assert sorted(url for _, url in engine.starts) == sorted(SITE)  # each fetched once
    assert frontier.pending() == 0 and not frontier.is_known("http://out.test/")


def test_per_host_concurrency_and_delay_hold_on_the_clock() -> None:
    _, _, _, engine = crawl(settings(per_host=1, delay=1.0))
    for host in ("a.test", "b.test"):
        times = [t for t, url in engine.starts if host_of(url) == host]
        assert all(later - earlier >= 1.0 - 1e-9 for earlier, later in itertools.pairwise(times)), times
    assert len({t for t, url in engine.starts if host_of(url) == "a.test"}) == 6


def test_a_host_slot_is_free_when_its_request_ends_not_when_extraction_does() -> None:
    """One request at a time to a host, each extracted for 1 s after its 0.2 s fetch: the next request to
    the host starts when the fetch ends, so extraction does not hold the host's slot."""
    status, _, sink, engine = crawl(settings(per_host=1, concurrency=8), extracting=1.0)
    assert status == "finished" and sorted(sink.stored) == sorted(SITE)
    times = [t for t, url in engine.starts if host_of(url) == "a.test"]
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    assert min(gaps) >= LATENCY - 1e-9, gaps  # still one at a time
    assert min(gaps) < LATENCY + 1.0 - 1e-9, gaps  # (1.2 s apart when the slot waited for the outcome)


def test_depth_counts_from_the_seeds() -> None:
    _, frontier, sink, _ = crawl(settings(max_depth=1))
    depths = {url: outcome.job.depth for url, outcome in sink.stored.items()}
    assert depths == {"http://a.test/": 0, "http://b.test/": 0, "http://a.test/1": 1, "http://a.test/2": 1,
                      "http://b.test/1": 1}
    assert not frontier.is_known("http://a.test/3")


def test_max_pages_stops_claiming_at_the_budget() -> None:
    status, frontier, sink, _ = crawl(settings(max_pages=3))
    assert status == "finished" and sink.count() == 3
    assert frontier.pending() > 0  # the rest stays queued for a later run


@pytest.mark.parametrize("stop_after", [1, 3, 5])
def test_a_stop_saves_what_arrived_and_gives_back_the_rest(stop_after: int) -> None:
    """Nothing stays claimed: every URL is either stored and done, or queued again; none is lost."""
    status, frontier, sink, _ = crawl(settings(), stop_after=stop_after)
    assert status == "interrupted"
    states = {url: frontier.state(url) for url, _ in frontier.known()}
    assert "claimed" not in states.values()
    assert {url for url, state in states.items() if state == "done"} == set(sink.stored)
    assert 0 < len(sink.stored) < len(SITE)


def test_one_big_host_is_claimed_in_batches_not_per_page(monkeypatch: pytest.MonkeyPatch) -> None:
    """A one-host crawl keeps the host crowded: the frontier is asked again only once half the host's
    share has drained (or new URLs came), not on every loop pass nor after every page."""
    big = {f"http://a.test/{i}": [f"http://a.test/{j}" for j in range(20 * i + 1, min(20 * i + 21, 400))]
           for i in range(400)}  # a tree of fanout 20: the frontier is wide, as on a real site
    big["http://a.test/"] = ["http://a.test/0"]
    monkeypatch.setattr(__import__(__name__), "SITE", big)
    monkeypatch.setattr(__import__(__name__), "SEEDS", ["http://a.test/"])
    status, frontier, sink, _ = crawl(settings(concurrency=50, per_host=4))
    assert status == "finished" and sink.count() == 401
    assert frontier.claims <= 401 / 10, frontier.claims  # (151 before claims were batched)


@dataclass
class SharedFrontier(CountingFrontier):
    """A frontier another process works on too: it holds `theirs` (claimed before the crawl starts) and
    settles them after `their_claims` claims of ours, adding a link found on one of them."""

    theirs: list[Job] = field(default_factory=list)
    their_claims: int = 0
    released: list[tuple[Job, float]] = field(default_factory=list)

    def claim(self, n: int, exclude_hosts: Collection[str] = (), per_host: int = 0) -> list[Job]:
        if self.theirs and self.claims >= self.their_claims:
            self.add([("http://a.test/5", "a.test", 3)])  # found by the other process
            self.done(self.theirs)
            self.theirs = []
        return super().claim(n, exclude_hosts, per_host)

    def release(self, fetched: list[tuple[Job, float]]) -> None:  # type: ignore[override]
        self.released.extend(fetched)


def test_the_loop_waits_while_another_process_holds_claims_and_takes_what_they_queue() -> None:
    clock = Clock()
    frontier, sink, engine = SharedFrontier(their_claims=6), MemorySink(), TableEngine(clock)
    frontier.add([("http://a.test/", "a.test", 0)])
    frontier.theirs = frontier.claim(1)  # the other process took the seed
    loop = Crawl(settings(), frontier, sink, engine, Scope.build(SEEDS, "host"), clock=clock)
    assert loop.run(Progress(enabled=False)) == "finished"
    assert list(sink.stored) == ["http://a.test/5"]  # theirs was not fetched again
    assert frontier.pending() == 0
    assert [job.url for job, _ in frontier.released] == ["http://a.test/5"]
    assert clock.now >= 5 * 0.25  # it waited, looking again every IDLE_WAIT, until the claims settled


def test_a_fetch_releases_its_host_with_the_hosts_delay() -> None:
    clock = Clock()
    frontier, sink, engine = SharedFrontier(), MemorySink(), TableEngine(clock)
    frontier.add([("http://a.test/3", "a.test", 0)])
    loop = Crawl(settings(delay=0.5), frontier, sink, engine, Scope.build(SEEDS, "host"), clock=clock)
    loop.run(Progress(enabled=False))
    assert [(job.url, rest) for job, rest in frontier.released] == [("http://a.test/3", 0.5)]


@dataclass
class LeasingFrontier(CountingFrontier):
    """A shared frontier's leases: a job claimed more than LEASE seconds ago is lost at its renewal."""

    clock: Clock = field(default_factory=Clock)
    claimed_at: dict[str, float] = field(default_factory=dict)
    lost: list[str] = field(default_factory=list)

    def claim(self, n: int, exclude_hosts: Collection[str] = (), per_host: int = 0) -> list[Job]:
        jobs = super().claim(n, exclude_hosts, per_host)
        self.claimed_at.update((job.url, self.clock.now) for job in jobs)
        return jobs

    def renew(self, jobs: Collection[Job]) -> list[Job]:
        expired = [job for job in jobs if self.clock.now - self.claimed_at[job.url] > STALL / 2]
        self.lost += [job.url for job in expired]
        return expired


def test_claims_lost_in_a_stall_are_reported_before_their_outcomes_are_written(
        capsys: pytest.CaptureFixture[str]) -> None:
    """A process stalled past its leases finds, on waking, the outcomes of the jobs it had in flight: they
    are renewed (and found lost) before they are written and settled, so the loss is told."""
    clock = Clock()
    frontier, sink = LeasingFrontier(clock=clock), MemorySink()
    engine = TableEngine(clock, stall_after=2)
    frontier.add((url, host_of(url), 0) for url in SEEDS)
    loop = Crawl(settings(), frontier, sink, engine, Scope.build(SEEDS, "host"), clock=clock)
    assert loop.run(Progress(enabled=False)) == "finished"
    assert sorted(sink.stored) == sorted(SITE)
    assert frontier.lost, "no renewal saw the jobs in flight during the stall"
    assert f"{len(frontier.lost)} claims expired" in capsys.readouterr().err


@dataclass
class GatedSink(MemorySink):
    """A sink whose first save once 50 pages are stored (the frontier wide, the buffer full) waits, on
    the saver's thread, until `gate` opens."""

    gate: threading.Event = field(default_factory=threading.Event)
    waiting: list[str] = field(default_factory=list)  # the URLs of the save held at the gate

    def save(self, outcomes: Sequence[Outcome]) -> None:
        if len(self.stored) >= 50 and not self.gate.is_set() and not self.waiting:
            self.waiting = [outcome.job.url for outcome in outcomes]
            assert self.gate.wait(timeout=10), "the loop stopped while a batch was being saved"
        super().save(outcomes)


@dataclass
class WatchingEngine(TableEngine):
    """Opens the sink's gate once `after` more outcomes have been handed out while its save waited,
    noting the frontier's states of the waiting batch's URLs then."""

    sink: GatedSink = field(default_factory=GatedSink)
    frontier: MemoryFrontier = field(default_factory=MemoryFrontier)
    after: int = 8  # (fewer than a flush interval brings: the next flush waits for this save)
    handed_while_saving: int = 0
    states_while_saving: set[str | None] = field(default_factory=set)

    def results(self, timeout: float) -> list[object]:
        ready = super().results(timeout)
        if self.sink.waiting and not self.sink.gate.is_set():
            self.handed_while_saving += len(ready)
            if self.handed_while_saving >= self.after:
                self.states_while_saving = {self.frontier.state(url) for url in self.sink.waiting}
                self.sink.gate.set()
        return ready


def test_the_loop_goes_on_while_a_batch_is_saved_and_settles_it_once_stored(monkeypatch: pytest.MonkeyPatch) -> None:
    """A save runs on the saver's thread: the loop goes on fetching meanwhile, and the saved batch's jobs
    stay claimed until the save has ended; then every page is stored once and every job is done."""
    big = {f"http://a.test/{i}": [f"http://a.test/{j}" for j in range(20 * i + 1, min(20 * i + 21, 300))]
           for i in range(300)}
    big["http://a.test/"] = ["http://a.test/0"]
    monkeypatch.setattr(__import__(__name__), "SITE", big)
    clock, frontier, sink = Clock(), CountingFrontier(), GatedSink()
    engine = WatchingEngine(clock, sink=sink, frontier=frontier)
    frontier.add([("http://a.test/", "a.test", 0)])
    loop = Crawl(settings(concurrency=8, per_host=8), frontier, sink, engine, Scope.build(["http://a.test/"], "host"),
                 clock=clock)
    assert loop.run(Progress(enabled=False)) == "finished"
    assert engine.handed_while_saving >= engine.after  # fetched on while the save waited
    assert engine.states_while_saving == {"claimed"}  # not settled before stored
    assert sorted(sink.stored) == sorted(big) and frontier.pending() == 0
