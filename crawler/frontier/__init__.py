"""Frontier: the queue of URLs a crawl has yet to fetch, as a small Protocol with an in-memory fake.

Each URL is known once per crawl, in one state: queued -> claimed (handed to a fetcher) -> done.
Claims come out oldest first, which makes the crawl breadth-first. The SQL implementation
(crawler.frontier.sql.SqlFrontier) keeps it in the crawl's database, so a crash loses nothing;
MemoryFrontier below is the fake for unit tests.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Protocol

from crawler.records import Job


class Frontier(Protocol):
    def add_many(self, entries: Iterable[tuple[str, str, int]]) -> int:
        """Queue (url, host, depth) entries not yet known; how many were new."""
        ...

    def claim(self, n: int, exclude_hosts: Collection[str] = (), per_host: int = 0) -> list[Job]:
        """Up to n queued jobs, oldest first, none from exclude_hosts, at most per_host (>0) per host."""
        ...

    def is_known(self, url: str) -> bool:
        """Whether the URL is in the frontier, in any state. Safe from any thread or greenlet."""
        ...

    def known(self) -> Iterator[tuple[str, str]]:
        """(url, host) of every URL the frontier holds, in any state."""
        ...

    def pending(self) -> int:
        """Queued + claimed."""
        ...

    def done_count(self) -> int: ...


def pick(
    candidates: Iterable[tuple[int, str, str, int]],
    n: int,
    exclude_hosts: Collection[str],
    per_host: int,
    taken: dict[str, int] | None = None,
) -> list[Job]:
    """The claim rule shared by both implementations, over (id, url, host, depth) in id order.

    `taken` counts jobs per host already picked (by an earlier window of the same claim); it is updated.
    """
    taken = {} if taken is None else taken
    jobs: list[Job] = []
    for id_, url, host, depth in candidates:
        if len(jobs) >= n:
            break
        if host in exclude_hosts or (per_host > 0 and taken.get(host, 0) >= per_host):
            continue
        taken[host] = taken.get(host, 0) + 1
        jobs.append(Job(id_, url, depth))
    return jobs


@dataclass
class MemoryFrontier:
    """A Frontier in a dict, for tests. `done(ids)` stands in for what Store.save does in SQL."""

    rows: dict[str, list] = field(default_factory=dict)  # url -> [id, host, depth, state]

    def add_many(self, entries: Iterable[tuple[str, str, int]]) -> int:
        before = len(self.rows)
        for url, host, depth in entries:
            self.rows.setdefault(url, [len(self.rows) + 1, host, depth, "queued"])
        return len(self.rows) - before

    def claim(self, n: int, exclude_hosts: Collection[str] = (), per_host: int = 0) -> list[Job]:
        queued = ((r[0], url, r[1], r[2]) for url, r in self.rows.items() if r[3] == "queued")
        jobs = pick(queued, n, exclude_hosts, per_host)
        for job in jobs:
            self.rows[job.url][3] = "claimed"
        return jobs

    def done(self, urls: Iterable[str]) -> None:
        for url in urls:
            self.rows[url][3] = "done"

    def is_known(self, url: str) -> bool:
        return url in self.rows

    def known(self) -> Iterator[tuple[str, str]]:
        return ((url, row[1]) for url, row in self.rows.items())

    def pending(self) -> int:
        return sum(r[3] != "done" for r in self.rows.values())

    def done_count(self) -> int:
        return sum(r[3] == "done" for r in self.rows.values())
