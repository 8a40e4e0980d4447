"""The scheduler: holds claimed jobs until they may start (robots.txt known, host slot free).

Pure: the clock is an argument and nothing here does I/O. The crawl loop feeds it claimed jobs,
asks `take(now)` what to start, and reports robots rules and finished requests back.

Jobs wait in one queue per host (oldest first), and a pass of `take` looks only at the hosts that may
start something: those just given jobs, rules or a free slot, and those whose delay has run out. A host
that can't start waits, off the pass, until what it waits for: a request of its own finishing
(Politeness.finished marks it freed), its robots.txt rules, or its delay (a heap by time). So a pass
costs O(hosts that may start + jobs started), not O(jobs buffered).
"""

from __future__ import annotations

import heapq
import math
from collections import deque
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
        self._queues: dict[str, deque[Job]] = {}  # host -> its buffered jobs, oldest first
        self._count = 0  # jobs buffered, over all hosts
        self._awake: dict[str, None] = {}  # hosts the next pass looks at (an ordered set)
        self._sleeping: list[tuple[float, str]] = []  # (when, host): hosts waiting for their delay

    def __len__(self) -> int:
        return self._count

    def room(self) -> int:
        return max(0, self.capacity - self._count)

    def host_share(self, floor: int) -> int:
        """How many jobs of one host to hold (buffered + in flight) at most: a fair share of the buffer
        among the hosts it holds and one newcomer, and never less than `floor`. A crawl of few hosts
        claims them in big batches; a broad crawl holds `floor` of each."""
        return max(floor, self.capacity // (len(self._queues) + 1))

    def crowded_hosts(self, limit: int) -> set[str]:
        """Hosts with at least `limit` jobs buffered or in flight: claim no more of them for now."""
        return {h for h, q in self._queues.items() if len(q) + self.politeness.in_flight(h) >= limit}

    def add(self, jobs: list[Job]) -> None:
        for job in jobs:
            host = host_of(job.url)
            queue = self._queues.get(host)
            if queue is None:
                queue = self._queues[host] = deque()
                self._awake[host] = None
            queue.append(job)
        self._count += len(jobs)

    def drain(self) -> list[Job]:
        """Every buffered job, removed (on shutdown, to give them back to the frontier)."""
        jobs = [job for queue in self._queues.values() for job in queue]
        self._queues.clear()
        self._awake.clear()
        self._sleeping.clear()
        self._count = 0
        return jobs

    def set_rules(self, origin: str, rules: Rules, max_delay: float, refusal: str | None = None) -> None:
        """Rules for `origin`; `refusal` is the error of its refused pages when robots.txt could not be
        read (then everything is refused), else they are "blocked: robots.txt"."""
        self.robots_pending.discard(origin)
        self.rules[origin] = rules
        self.refusals[origin] = refusal or "blocked: robots.txt"
        host = host_of(origin)
        delay = rules.crawl_delay(self.user_agent)
        if delay:
            self.politeness.set_delay(host, min(delay, max_delay))
        self._awake[host] = None

    def rules_for(self, url: str) -> Rules | None:
        return self.rules.get(origin_of(url)) if self.obey_robots else ALLOW_ALL

    def take(self, now: float) -> Ready:
        """Remove and return the jobs that may start now; a job's host slot is taken when returned."""
        self._wake(now)
        ready = Ready()
        awake, self._awake = self._awake, {}
        for host in awake:
            queue = self._queues.get(host)
            if queue is not None:
                self._start(host, queue, now, ready)
        return ready

    def _wake(self, now: float) -> None:
        """Hosts whose delay has run out, and those a finished request freed, join the next pass."""
        while self._sleeping and self._sleeping[0][0] <= now:
            self._awake[heapq.heappop(self._sleeping)[1]] = None
        for host in self.politeness.take_freed():
            self._awake[host] = None

    def _start(self, host: str, queue: deque[Job], now: float, ready: Ready) -> None:
        """Start what the host may, oldest first; then it waits (see the module docstring) or is gone."""
        while queue:
            job = queue[0]
            rules = self.rules_for(job.url)
            if rules is None:
                self._want_robots(origin_of(job.url), now, ready)
                break
            if not rules.allowed(job.url, self.user_agent):
                ready.refused.append((job, self.refusals.get(origin_of(job.url), "blocked: robots.txt")))
            elif self.politeness.can_start(host, now):
                self.politeness.started(host, now)
                ready.fetch.append(job)
            else:
                break
            queue.popleft()
            self._count -= 1
        if not queue:
            del self._queues[host]
        elif self.rules_for(queue[0].url) is not None or origin_of(queue[0].url) not in self.robots_pending:
            self._sleep(host, now)  # (one waiting for its robots.txt is woken by set_rules)

    def _sleep(self, host: str, now: float) -> None:
        wait = self.politeness.wait_time(host, now)
        if wait < math.inf:  # (busy: woken when a request finishes)
            heapq.heappush(self._sleeping, (now + wait, host))

    def _want_robots(self, origin: str, now: float, ready: Ready) -> None:
        host = host_of(origin)
        if origin not in self.robots_pending and self.politeness.can_start(host, now):
            self.robots_pending.add(origin)
            self.politeness.started(host, now)
            ready.robots.append(origin)

    def wait_time(self, now: float) -> float:
        """Seconds until some buffered job could start by time alone (0 when one may start now, inf when
        every host waits for a request to finish or for its robots.txt)."""
        if self._awake or self.politeness.has_freed():
            return 0.0
        if self._sleeping:
            return max(0.0, self._sleeping[0][0] - now)
        return math.inf if self._count else 0.0
