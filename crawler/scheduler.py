"""The scheduler: holds claimed jobs until they may start (robots.txt known, host slot free).

Pure: the clock is an argument and nothing here does I/O. The crawl loop feeds it claimed jobs,
asks `take(now)` what to start, and reports robots rules and finished requests back.
"""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass, field

from crawler.politeness import Politeness
from crawler.records import Job
from crawler.robots import ALLOW_ALL, Rules
from crawler.urls import host_of, origin_of


@dataclass
class Ready:
    """What may start now: pages to fetch, pages robots.txt refuses, origins whose robots.txt to fetch."""

    fetch: list[Job] = field(default_factory=list)
    refused: list[tuple[Job, str]] = field(default_factory=list)  # with the reason, for the error row
    robots: list[str] = field(default_factory=list)


class Scheduler:
    def __init__(self, politeness: Politeness, user_agent: str, capacity: int, obey_robots: bool = True):
        self.politeness = politeness
        self.user_agent = user_agent
        self.capacity = capacity
        self.obey_robots = obey_robots
        self.rules: dict[str, Rules] = {}
        self.refusals: dict[str, str] = {}  # origin -> why its robots.txt refuses (for error rows)
        self.robots_pending: set[str] = set()
        self._jobs: deque[Job] = deque()
        self._per_host: Counter[str] = Counter()  # buffered jobs per host

    def __len__(self) -> int:
        return len(self._jobs)

    def room(self) -> int:
        return max(0, self.capacity - len(self._jobs))

    def host_share(self, floor: int) -> int:
        """How many jobs of one host to hold (buffered + in flight) at most: a fair share of the buffer
        among the hosts it holds and one newcomer, and never less than `floor`. A crawl of few hosts
        claims them in big batches; a broad crawl holds `floor` of each."""
        return max(floor, self.capacity // (len(self._per_host) + 1))

    def crowded_hosts(self, limit: int) -> set[str]:
        """Hosts with at least `limit` jobs buffered or in flight: claim no more of them for now."""
        return {h for h, n in self._per_host.items() if n + self.politeness.in_flight(h) >= limit}

    def add(self, jobs: list[Job]) -> None:
        self._jobs.extend(jobs)
        self._per_host.update(host_of(job.url) for job in jobs)

    def drain(self) -> list[Job]:
        """Every buffered job, removed (on shutdown, to give them back to the frontier)."""
        jobs = list(self._jobs)
        self._jobs.clear()
        self._per_host.clear()
        return jobs

    def set_rules(self, origin: str, rules: Rules, max_delay: float, refusal: str | None = None) -> None:
        """Rules for `origin`; `refusal` is the error of its refused pages when robots.txt could not be
        read (then everything is refused), else they are "blocked: robots.txt"."""
        self.robots_pending.discard(origin)
        self.rules[origin] = rules
        self.refusals[origin] = refusal or "blocked: robots.txt"
        delay = rules.crawl_delay(self.user_agent)
        if delay:
            self.politeness.set_delay(host_of(origin), min(delay, max_delay))

    def rules_for(self, url: str) -> Rules | None:
        return self.rules.get(origin_of(url)) if self.obey_robots else ALLOW_ALL

    def take(self, now: float) -> Ready:
        """Remove and return the jobs that may start now; a job's host slot is taken when returned."""
        ready = Ready()
        for _ in range(len(self._jobs)):
            job = self._jobs.popleft()
            if not self._try_start(job, now, ready):
                self._jobs.append(job)
        return ready

    def _try_start(self, job: Job, now: float, ready: Ready) -> bool:
        rules = self.rules_for(job.url)
        if rules is None:
            self._want_robots(origin_of(job.url), now, ready)
            return False
        if not rules.allowed(job.url, self.user_agent):
            ready.refused.append((job, self.refusals.get(origin_of(job.url), "blocked: robots.txt")))
        elif self.politeness.can_start(host := host_of(job.url), now):
            self.politeness.started(host, now)
            ready.fetch.append(job)
        else:
            return False
        self._forget(host_of(job.url))
        return True

    def _forget(self, host: str) -> None:
        self._per_host[host] -= 1
        if self._per_host[host] <= 0:
            del self._per_host[host]

    def _want_robots(self, origin: str, now: float, ready: Ready) -> None:
        host = host_of(origin)
        if origin not in self.robots_pending and self.politeness.can_start(host, now):
            self.robots_pending.add(origin)
            self.politeness.started(host, now)
            ready.robots.append(origin)

    def wait_time(self, now: float) -> float:
        """Seconds until some buffered job could start by time alone (0 when one can start now)."""
        hosts = {host_of(job.url) for job in self._jobs}
        return min((self.politeness.wait_time(h, now) for h in hosts), default=0.0)
