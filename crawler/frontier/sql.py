"""SqlFrontier: the frontier as rows of the `frontier` table, in the crawl's own database.

Claims read the index (crawl_id, state, id) in id order, so a claim costs the same on a frontier of
500k rows as on one of 50. A window is the first SCAN_LIMIT queued rows (index only) less the
excluded hosts, filtered in SQL; the per-host cap is applied in Python, and a host that reaches it is
excluded from the next window (at most MAX_WINDOWS). So when the head of the queue is all excluded
hosts (one big site in flight), a claim returns fewer jobs, or none, in bounded time (about 6 ms)
instead of walking the whole queue; the crawl loop claims again when fetches finish and un-crowd
those hosts (and with nothing in flight nothing is excluded, so a crawl never stalls).
On PostgreSQL the candidates are locked FOR UPDATE SKIP LOCKED, so several claimers never share a job.
Every write is one transaction through crawler.store.db.run_write (BEGIN IMMEDIATE on SQLite, retried
while locked).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator, Sequence

from sqlalchemy import ColumnElement, Connection, Engine, bindparam, exists, func, select, update

from crawler.frontier import Entry, OneProcess, pick
from crawler.records import Job
from crawler.store.db import run_read, run_write
from crawler.store.schema import CLAIMED, DONE, QUEUED, bulk_insert, frontier, insert_ignore, pages

SCAN_LIMIT = 10_000  # queued rows one window looks at, at most
MAX_WINDOWS = 4


class SqlFrontier(OneProcess):
    """A crawl's frontier in SQL (see the module docstring)."""

    def __init__(self, engine: Engine, crawl_id: int) -> None:
        self.engine = engine
        self.crawl_id = crawl_id

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

    def done(self, jobs: Sequence[Job], landed: Sequence[Entry] = ()) -> list[Job]:
        """The jobs' rows turn done; the landed URLs are inserted as done, or turn done if known. (Never
        rebuilt: nothing to add again.)"""
        if jobs or landed:
            run_write(self.engine, lambda conn: self._done(conn, [job.id for job in jobs], landed))
        return []

    def _done(self, conn: Connection, ids: list[int], landed: Sequence[Entry]) -> None:
        if ids:
            conn.execute(update(frontier).where(frontier.c.id.in_(ids)).values(state=DONE))
        if landed:
            conn.execute(insert_ignore(conn.dialect.name, frontier), self._rows(landed, DONE))
            urls = [url for url, _, _ in landed]
            known = self._mine() & frontier.c.url.in_(urls) & (frontier.c.state != DONE)
            conn.execute(update(frontier).where(known).values(state=DONE))

    def give_back(self, jobs: Sequence[Job]) -> None:
        """The jobs' rows, while claimed, turn queued again."""
        if jobs:
            claimed = frontier.c.id.in_([job.id for job in jobs]) & (frontier.c.state == CLAIMED)
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
