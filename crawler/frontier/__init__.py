"""Frontier: a URL's whole life in a crawl, as a small Protocol with an in-memory fake.

Each URL is known once per crawl, in one state: queued -> claimed (handed to a fetcher) -> done.
`add` queues what is new, `claim` hands out the oldest queued (breadth-first), `done` settles claimed
jobs (and marks the URLs their redirect chains landed on), `give_back` requeues claimed jobs not
fetched, `lower_depth` lets a URL still queued take a shorter path's depth, and `recover` requeues
what a process that is gone had claimed. A frontier shared by many processes (Redis) also schedules
hosts for all of them: `release` tells it a fetch ended (the host's slot is free after a rest), and
`renew` keeps the claims' leases alive; for a frontier of one process both are no-ops.
SqlFrontier (crawler.frontier.sql) keeps it in the crawl's database, so a crash loses nothing;
RedisFrontier (crawler.frontier.redis) is the one many workers share; MemoryFrontier below is the
fake the loop's unit tests use.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from crawler.records import Job

Entry = tuple[str, str, int]  # (url, host, depth)


class FrontierLost(Exception):
    """A shared frontier has no state for this crawl (Redis restarted without persistence, or flushed)."""


class Frontier(Protocol):
    def add(self, entries: Iterable[Entry]) -> int:
        """Queue the entries not yet known; how many were new."""
        ...

    def claim(self, n: int, exclude_hosts: Collection[str] = (), per_host: int = 0) -> list[Job]:
        """Up to n queued jobs, oldest first, none from exclude_hosts, at most per_host (>0) per host. With
        a cap or hosts excluded (and always for a shared frontier): each host's oldest, hosts in turn."""
        ...

    def done(self, jobs: Sequence[Job], landed: Sequence[Entry] = ()) -> list[Job]:
        """The jobs are settled (their pages are stored); so are the `landed` URLs, where redirect chains
        followed in place ended (marked done, added as done if unknown: they are never fetched alone).
        Returns the jobs claimed before the frontier was rebuilt (a shared frontier that lost its data):
        the rebuild may not have known their links, which the caller adds again."""
        ...

    def give_back(self, jobs: Sequence[Job]) -> None:
        """Claimed jobs not settled go back to the queue (a crawl stopping)."""
        ...

    def lower_depth(self, found: Sequence[tuple[str, int]]) -> None:
        """Each (url, depth): the URL, while still queued, takes the depth if it is smaller."""
        ...

    def recover(self) -> int:
        """Requeue what a process that is gone had claimed; how many."""
        ...

    def is_known(self, url: str) -> bool:
        """Whether the URL is in the frontier, in any state. Safe from any thread or greenlet."""
        ...

    def known(self) -> Iterator[tuple[str, str]]:
        """(url, host) of every URL the frontier holds, in any state."""
        ...

    def pending(self) -> int:
        """Queued + claimed (by any process): 0 means the crawl is finished."""
        ...

    def release(self, fetched: Sequence[tuple[Job, float]]) -> None:
        """Each (job, rest): its fetch ended; its host may be claimed again `rest` seconds from now."""
        ...

    def renew(self, jobs: Collection[Job]) -> list[Job]:
        """Extend the leases of claimed jobs not yet settled; the ones this process no longer holds."""
        ...


def pick(
    candidates: Iterable[tuple[int, str, str, int]],
    n: int,
    exclude_hosts: Collection[str],
    per_host: int,
) -> list[Job]:
    """The claim rule of the fake, over (id, url, host, depth) in id order."""
    taken: dict[str, int] = {}
    jobs: list[Job] = []
    for id_, url, host, depth in candidates:
        if len(jobs) >= n:
            break
        if host in exclude_hosts or (per_host > 0 and taken.get(host, 0) >= per_host):
            continue
        taken[host] = taken.get(host, 0) + 1
        jobs.append(Job(id_, url, depth))
    return jobs


QUEUED, CLAIMED, DONE = "queued", "claimed", "done"


class OneProcess:
    """release and renew of a frontier one process owns: its scheduler keeps politeness locally, and its
    claims last until that process settles them, gives them back, or is gone (see recover)."""

    def release(self, fetched: Sequence[tuple[Job, float]]) -> None:
        pass

    def renew(self, jobs: Collection[Job]) -> list[Job]:
        return []


@dataclass
class MemoryFrontier(OneProcess):
    """A Frontier in a dict, for tests."""

    rows: dict[str, list] = field(default_factory=dict)  # url -> [id, host, depth, state]

    def add(self, entries: Iterable[Entry]) -> int:
        before = len(self.rows)
        for url, host, depth in entries:
            self.rows.setdefault(url, [len(self.rows) + 1, host, depth, QUEUED])
        return len(self.rows) - before

    def claim(self, n: int, exclude_hosts: Collection[str] = (), per_host: int = 0) -> list[Job]:
        queued = ((r[0], url, r[1], r[2]) for url, r in self.rows.items() if r[3] == QUEUED)
        jobs = pick(queued, n, exclude_hosts, per_host)
        for job in jobs:
            self.rows[job.url][3] = CLAIMED
        return jobs

    def done(self, jobs: Sequence[Job], landed: Sequence[Entry] = ()) -> list[Job]:
        self.add(landed)
        for url in [job.url for job in jobs] + [url for url, _, _ in landed]:
            self.rows[url][3] = DONE
        return []

    def give_back(self, jobs: Sequence[Job]) -> None:
        self._requeue(job.url for job in jobs)

    def lower_depth(self, found: Sequence[tuple[str, int]]) -> None:
        for url, depth in found:
            row = self.rows.get(url)
            if row is not None and row[3] == QUEUED and depth < row[2]:
                row[2] = depth

    def recover(self) -> int:
        return self._requeue([url for url, row in self.rows.items() if row[3] == CLAIMED])

    def _requeue(self, urls: Iterable[str]) -> int:
        count = 0
        for url in urls:
            if self.rows[url][3] == CLAIMED:
                self.rows[url][3] = QUEUED
                count += 1
        return count

    def is_known(self, url: str) -> bool:
        return url in self.rows

    def known(self) -> Iterator[tuple[str, str]]:
        return ((url, row[1]) for url, row in self.rows.items())

    def pending(self) -> int:
        return sum(r[3] != DONE for r in self.rows.values())

    def state(self, url: str) -> str | None:
        """The URL's state, or None if unknown (for tests)."""
        row = self.rows.get(url)
        return None if row is None else row[3]
