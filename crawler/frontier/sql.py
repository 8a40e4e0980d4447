"""SqlFrontier: the frontier as rows of the `frontier` table, in the crawl's own database.

A claim reads a bounded number of rows, however the queue is made: with no per-host cap and no
excluded host, the n oldest (index (crawl_id, state, id)); otherwise it walks the queued hosts in name
order through the index (crawl_id, state, host, id), one O(log n) probe per host (the next queued host
after the last one seen; a recursive statement makes many probes), taking each host's oldest rows up
to the cap, hosts in turn from where the last claim stopped. An excluded host costs one probe, not a
scan of its rows, so a claim whose queue is all one crowded host returns nothing at once, and a claim
of a 500k-row frontier costs what one of 50 does.
On PostgreSQL the candidates are locked FOR UPDATE SKIP LOCKED, so several claimers never share a job.
Every write is one transaction through crawler.store.db.run_write (BEGIN IMMEDIATE on SQLite, retried
while locked).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator, Sequence

from sqlalchemy import ColumnElement, Connection, Engine, bindparam, exists, func, select, text, update

from crawler.frontier import Entry, OneProcess
from crawler.records import Job
from crawler.store.db import run_read, run_write
from crawler.store.schema import CLAIMED, DONE, QUEUED, bulk_insert, frontier, one_of, pages

MAX_WALK = 1000  # hosts one statement of a claim's walk reads, at most
_NEXT = ("(SELECT host FROM frontier WHERE crawl_id = :crawl_id AND state = :queued AND host > {} "
         "ORDER BY host LIMIT 1)")
NEXT_HOSTS = text(
    f"WITH RECURSIVE walk(host) AS (SELECT {_NEXT.format(':after')} "
    f"UNION ALL SELECT {_NEXT.format('walk.host')} FROM walk WHERE walk.host IS NOT NULL) "
    "SELECT host FROM walk WHERE host IS NOT NULL LIMIT :limit"
)


class SqlFrontier(OneProcess):
    """A crawl's frontier in SQL (see the module docstring)."""

    def __init__(self, engine: Engine, crawl_id: int) -> None:
        self.engine = engine
        self.crawl_id = crawl_id
        self.last_host = ""  # where the last claim's walk over the hosts stopped: the next starts after it

    def add(self, entries: Iterable[Entry]) -> int:
        """Queue the (url, host, depth) not yet known; the exact number that were new."""
        rows = self._rows(entries, QUEUED)
        return run_write(self.engine, lambda conn: bulk_insert(conn, frontier, rows, ignore=True)) if rows else 0

    def _rows(self, entries: Iterable[Entry], state: str) -> list[dict[str, object]]:
        unique: dict[str, tuple[str, int]] = {}
        for url, host, depth in entries:
            unique.setdefault(url, (host, depth))
        return [{"crawl_id": self.crawl_id, "url": url, "host": host, "depth": depth, "state": state}
                for url, (host, depth) in unique.items()]

    def claim(self, n: int, exclude_hosts: Collection[str] = (), per_host: int = 0) -> list[Job]:
        """Up to n queued jobs, none of exclude_hosts: the oldest; with a per_host (>0) cap or hosts
        excluded, each host's oldest (at most per_host), hosts in turn (see the module docstring)."""
        if n <= 0:
            return []
        return run_write(self.engine, lambda conn: self._claim(conn, n, set(exclude_hosts), per_host))

    def _claim(self, conn: Connection, n: int, excluded: set[str], per_host: int) -> list[Job]:
        if per_host <= 0 and not excluded:
            jobs = self._oldest(conn, n)
        else:
            jobs = self._by_host(conn, n, excluded, per_host if per_host > 0 else n)
        if jobs:
            ids = [job.id for job in jobs]
            conn.execute(update(frontier).where(one_of(frontier.c.id, ids)).values(state=CLAIMED))
        return jobs

    def _by_host(self, conn: Connection, n: int, excluded: set[str], per_host: int) -> list[Job]:
        """Each queued host's oldest jobs, up to per_host, hosts in turn, until there are n."""
        jobs: list[Job] = []
        for host in self._hosts(conn, excluded, min(n + len(excluded), MAX_WALK)):
            jobs += self._oldest(conn, min(per_host, n - len(jobs)), host)
            self.last_host = host
            if len(jobs) >= n:
                break
        return jobs

    def _hosts(self, conn: Connection, excluded: set[str], batch: int) -> Iterator[str]:
        """The hosts with queued rows, not excluded, each once: in name order from the one after the last
        claim's, wrapping round to the first; read `batch` at a time."""
        start, after, wrapped = self.last_host, self.last_host, False
        while True:
            hosts = self._next_hosts(conn, after, batch)
            for host in hosts:
                if wrapped and host > start:
                    return
                if host not in excluded:
                    yield host
            if len(hosts) == batch:
                after = hosts[-1]
            elif wrapped or not start:
                return
            else:
                after, wrapped = "", True

    def _next_hosts(self, conn: Connection, after: str, limit: int) -> list[str]:
        """Up to `limit` hosts with queued rows after `after`, in name order: one statement, one index
        probe per host (a loose index scan, as a recursive CTE)."""
        params = {"crawl_id": self.crawl_id, "queued": QUEUED, "after": after, "limit": limit}
        return list(conn.execute(NEXT_HOSTS, params).scalars())

    def _oldest(self, conn: Connection, n: int, host: str | None = None) -> list[Job]:
        """The n oldest queued jobs (of `host`, if given), locked on PostgreSQL (others' locked skipped)."""
        c = frontier.c
        query = select(c.id, c.url, c.depth).where(c.crawl_id == self.crawl_id, c.state == QUEUED)
        if host is not None:
            query = query.where(c.host == host)
        query = query.order_by(c.id).limit(n).with_for_update(skip_locked=True)
        return [Job(id_, url, depth) for id_, url, depth in conn.execute(query)]

    def done(self, jobs: Sequence[Job], landed: Sequence[Entry] = ()) -> list[Job]:
        """The jobs' rows turn done; the landed URLs are inserted as done, or turn done if known. (Never
        rebuilt: nothing to add again.)"""
        if jobs or landed:
            run_write(self.engine, lambda conn: self._done(conn, [job.id for job in jobs], landed))
        return []

    def _done(self, conn: Connection, ids: list[int], landed: Sequence[Entry]) -> None:
        if ids:
            conn.execute(update(frontier).where(one_of(frontier.c.id, ids)).values(state=DONE))
        if landed:
            bulk_insert(conn, frontier, self._rows(landed, DONE), ignore=True)
            urls = [url for url, _, _ in landed]
            known = self._mine() & one_of(frontier.c.url, urls) & (frontier.c.state != DONE)
            conn.execute(update(frontier).where(known).values(state=DONE))

    def give_back(self, jobs: Sequence[Job]) -> None:
        """The jobs' rows, while claimed, turn queued again."""
        if jobs:
            claimed = one_of(frontier.c.id, [job.id for job in jobs]) & (frontier.c.state == CLAIMED)
            run_write(self.engine, lambda conn: conn.execute(update(frontier).where(claimed).values(state=QUEUED)))

    def lower_depth(self, found: Sequence[tuple[str, int]]) -> None:
        """Each (url, depth): the URL's row, while still queued, takes the depth if it is smaller."""
        if not found:
            return
        row = frontier.c
        still_deeper = self._mine() & (row.url == bindparam("u")) & (row.state == QUEUED)
        query = update(frontier).where(still_deeper & (row.depth > bindparam("d"))).values(depth=bindparam("d"))
        params = [{"u": url, "d": depth} for url, depth in found]
        run_write(self.engine, lambda conn: conn.execute(query, params))

    def recover(self) -> int:
        """Every claimed row back to queued (the caller knows no live process holds them), but for those
        whose page is stored (a run died between storing it and settling the job): they turn done, not
        fetched again. How many were requeued."""
        claimed = self._mine() & (frontier.c.state == CLAIMED)
        stored = exists().where(pages.c.crawl_id == frontier.c.crawl_id, pages.c.url == frontier.c.url)

        def run(conn: Connection) -> int:
            conn.execute(update(frontier).where(claimed & stored).values(state=DONE))
            return conn.execute(update(frontier).where(claimed).values(state=QUEUED)).rowcount

        return run_write(self.engine, run)

    def is_known(self, url: str) -> bool:
        """Whether the crawl's frontier holds `url` in any state (a short read on a pooled connection)."""
        query = select(frontier.c.id).where(self._mine(), frontier.c.url == url).limit(1)
        return run_read(self.engine, lambda conn: conn.execute(query).first() is not None)

    def known(self) -> Iterator[tuple[str, str]]:
        """(url, host) of every URL of the crawl's frontier, in any state, streamed in batches."""
        query = select(frontier.c.url, frontier.c.host).where(self._mine())
        with self.engine.connect() as conn, conn.execution_options(yield_per=10_000).execute(query) as rows:
            yield from ((url, host) for url, host in rows)  # plain tuples, not Rows

    def pending(self) -> int:
        """Jobs queued or claimed."""
        return self._count(frontier.c.state.in_([QUEUED, CLAIMED]))

    def done_count(self) -> int:
        return self._count(frontier.c.state == DONE)

    def _mine(self) -> ColumnElement[bool]:
        return frontier.c.crawl_id == self.crawl_id

    def _count(self, condition: ColumnElement[bool]) -> int:
        query = select(func.count()).select_from(frontier).where(self._mine(), condition)
        return run_read(self.engine, lambda conn: conn.execute(query).scalar_one())
