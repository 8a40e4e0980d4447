"""SqlFrontier: the frontier as rows of the `frontier` table, in the crawl's own database.

Claims read the index (crawl_id, state, id) in id order, so a claim costs the same on a frontier of
500k rows as on one of 50. A window is the first SCAN_LIMIT queued rows (index only) less the
excluded hosts, filtered in SQL; the per-host cap is applied in Python, and a host that reaches it is
excluded from the next window (at most MAX_WINDOWS). So when the head of the queue is all excluded
hosts (one big site in flight), a claim returns fewer jobs, or none, in bounded time (about 6 ms)
instead of walking the whole queue; the crawl loop claims again when fetches finish and un-crowd
those hosts (and with nothing in flight nothing is excluded, so a crawl never stalls).
On PostgreSQL the candidates are locked FOR UPDATE SKIP LOCKED, so several claimers never share a job.
Writes go through crawler.store.run_write (BEGIN IMMEDIATE on SQLite, retried while locked).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator

from sqlalchemy import ColumnElement, Connection, Engine, func, select, update

from crawler.batch import queue
from crawler.frontier import pick
from crawler.records import Job
from crawler.schema import CLAIMED, DONE, QUEUED, frontier
from crawler.store import run_write

SCAN_LIMIT = 10_000  # queued rows one window looks at, at most
MAX_WINDOWS = 4


class SqlFrontier:
    """A crawl's frontier in SQL (see the module docstring)."""

    def __init__(self, engine: Engine, crawl_id: int) -> None:
        self.engine = engine
        self.crawl_id = crawl_id

    def add_many(self, entries: Iterable[tuple[str, str, int]]) -> int:
        """Queue the (url, host, depth) not yet known; the exact number that were new."""
        batch = list(entries)
        return run_write(self.engine, lambda conn: queue(conn, self.crawl_id, batch)) if batch else 0

    def claim(self, n: int, exclude_hosts: Collection[str] = (), per_host: int = 0) -> list[Job]:
        """Up to n queued jobs, oldest first, skipping exclude_hosts, at most per_host (>0) per host."""
        if n <= 0:
            return []
        return run_write(self.engine, lambda conn: self._claim(conn, n, set(exclude_hosts), per_host))

    def _claim(self, conn: Connection, n: int, excluded: set[str], per_host: int) -> list[Job]:
        jobs: list[Job] = []
        taken: dict[str, int] = {}
        size = max(4 * n, 256) if per_host > 0 else n
        after = 0
        for _ in range(MAX_WINDOWS):
            rows = self._window(conn, after, size, excluded)
            jobs += pick(rows, n - len(jobs), excluded, per_host, taken)
            if len(jobs) >= n or len(rows) < size:
                break
            after = rows[-1][0]
            excluded = excluded | {host for host, count in taken.items() if count >= per_host}
        if jobs:
            ids = [job.id for job in jobs]
            conn.execute(update(frontier).where(frontier.c.id.in_(ids)).values(state=CLAIMED))
        return jobs

    def _window(
        self, conn: Connection, after: int, size: int, excluded: set[str]
    ) -> list[tuple[int, str, str, int]]:
        """Up to `size` rows, in id order, among the next SCAN_LIMIT queued after id `after`, not excluded."""
        c = frontier.c
        queued = (c.crawl_id == self.crawl_id, c.state == QUEUED, c.id > after)
        query = select(c.id, c.url, c.host, c.depth)
        if excluded:
            head = select(c.id).where(*queued).order_by(c.id).limit(SCAN_LIMIT)
            query = query.where(c.id.in_(head), c.host.not_in(sorted(excluded)))
        else:
            query = query.where(*queued)
        query = query.order_by(c.id).limit(size).with_for_update(skip_locked=True)
        return [(row.id, row.url, row.host, row.depth) for row in conn.execute(query)]

    def is_known(self, url: str) -> bool:
        """Whether the crawl's frontier holds `url` in any state (a short read on a pooled connection)."""
        query = select(frontier.c.id).where(frontier.c.crawl_id == self.crawl_id, frontier.c.url == url)
        with self.engine.connect() as conn:
            return conn.execute(query.limit(1)).first() is not None

    def known(self) -> Iterator[tuple[str, str]]:
        """(url, host) of every URL of the crawl's frontier, in any state, streamed in batches."""
        query = select(frontier.c.url, frontier.c.host).where(frontier.c.crawl_id == self.crawl_id)
        with self.engine.connect() as conn, conn.execution_options(yield_per=10_000).execute(query) as rows:
            yield from ((url, host) for url, host in rows)  # plain tuples, not Rows

    def pending(self) -> int:
        """Jobs queued or claimed."""
        return self._count(frontier.c.state.in_([QUEUED, CLAIMED]))

    def done_count(self) -> int:
        return self._count(frontier.c.state == DONE)

    def _count(self, condition: ColumnElement[bool]) -> int:
        query = (
            select(func.count()).select_from(frontier).where(frontier.c.crawl_id == self.crawl_id, condition)
        )
        with self.engine.connect() as conn:
            return conn.execute(query).scalar_one()
