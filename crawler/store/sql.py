"""Store: crawls, their runs and their pages, in one SQL database (SQLite or PostgreSQL).

`open_store` opens (creating and migrating) the database; `Store` owns the crawls and runs rows;
`Store.pages(crawl_id, run_id)` is the crawl loop's Sink: pages and their links, each URL stored once
(insert-or-ignore on the unique (crawl_id, url)), with the run's heartbeat. The frontier's rows are
crawler.frontier.sql's; the plumbing (engines, run_write, migrations, errors) is crawler.store.db's.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Self, TypeVar

from sqlalchemy import Connection, Engine, func, select, update
from sqlalchemy.exc import SQLAlchemyError

from crawler.frontier.sql import SqlFrontier
from crawler.records import Outcome
from crawler.store.db import (
    BUSY_TIMEOUT,
    GIVE_UP_OPTION,
    LOCK_WAIT,
    LOCK_WAIT_OPTION,
    StoreError,
    make_engine,
    reason,
    refuse_foreign,
    run_read,
    run_write,
    shown,
    upgrade,
)
from crawler.store.recrawl import carry_forward, earlier_urls
from crawler.store.schema import FINISHED, RUNNING, bulk_insert, bulk_insert_new, crawls, links, pages, runs

T = TypeVar("T")
HEARTBEAT = 5.0  # seconds between two heartbeats of a run
STALE = 60.0  # a run on another machine whose heartbeat is older than this is taken for dead


def open_store(
    db: str,
    *,
    create: bool = True,
    busy_timeout: float = BUSY_TIMEOUT,
    lock_wait: float = LOCK_WAIT,
    give_up: Callable[[], bool] | None = None,
) -> Store:
    """Open (creating and migrating as needed) the database at `db`; StoreError if that is impossible,
    DatabaseRefused if it is another application's. Every write, the migration's included, stops
    waiting for a locked database once `give_up()` (a crawl stopping)."""
    engine = make_engine(db, create=create, busy_timeout=busy_timeout)
    refuse_foreign(db)  # before the first connection, which would set SQLite's journal mode
    store = Store(engine, lock_wait, give_up)
    try:
        with engine.connect():  # a server that is not there fails here, at once (writes retry later)
            pass
        upgrade(store.engine)
    except (StoreError, SQLAlchemyError, OSError) as e:
        engine.dispose()
        raise StoreError(f"cannot open {shown(engine.url)}: {reason(e)}") from e
    return store


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True)
class Run:
    """A process working on a crawl, as its runs row shows it."""

    id: int
    host: str
    pid: int
    alive_at: dt.datetime

    def is_live(self, at: dt.datetime) -> bool:
        """On this machine: its process exists. Elsewhere: its heartbeat is fresh."""
        if self.host == socket.gethostname():
            return pid_exists(self.pid)
        return (at - self.alive_at).total_seconds() < STALE


def pid_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Store:
    """Crawls, their runs and pages, in one database. Methods are safe to call from threads."""

    def __init__(
        self, engine: Engine, lock_wait: float = LOCK_WAIT, give_up: Callable[[], bool] | None = None
    ) -> None:
        self._base = engine
        self.engine = engine.execution_options(**{LOCK_WAIT_OPTION: lock_wait, GIVE_UP_OPTION: give_up})

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._base.dispose()

    def write(self, fn: Callable[[Connection], T]) -> T:
        return run_write(self.engine, fn)

    def read(self, fn: Callable[[Connection], T]) -> T:
        return run_read(self.engine, fn)

    def frontier(self, crawl_id: int) -> SqlFrontier:
        """The crawl's SqlFrontier, on this store's engine."""
        return SqlFrontier(self.engine, crawl_id)

    def pages(self, crawl_id: int, run_id: int | None = None, recrawl_of: int | None = None) -> CrawlPages:
        """The crawl's pages, as the loop's Sink; with run_id, its saves beat that run's heartbeat; with
        recrawl_of, a 304 carries that crawl's row forward."""
        return CrawlPages(self, crawl_id, run_id, recrawl_of)

    # -- crawls ---------------------------------------------------------------------------------

    def start_crawl(self, seeds: list[str], settings_json: str, recrawl_of: int | None = None) -> int:
        """A new crawl, status running (a recrawl of crawl `recrawl_of`); its id. Its frontier queues the seeds."""
        row = {"started_at": now(), "status": RUNNING, "seeds": json.dumps(seeds), "settings": settings_json,
               "recrawl_of": recrawl_of}
        return self.write(lambda conn: conn.execute(crawls.insert().values(row).returning(crawls.c.id)).scalar_one())

    def latest_unfinished(self) -> tuple[int, list[str], str] | None:
        """(id, seeds, settings JSON) of the newest crawl not finished, if any."""
        query = select(crawls.c.id, crawls.c.seeds, crawls.c.settings).where(crawls.c.status != "finished")
        row = self.read(lambda conn: conn.execute(query.order_by(crawls.c.id.desc()).limit(1)).first())
        return None if row is None else (row.id, json.loads(row.seeds), row.settings)

    def running_crawl(self, crawl_id: int | None = None) -> tuple[int, list[str], str]:
        """(id, seeds, settings JSON) of the crawl to join: the given one unless finished, or the latest
        running one; StoreError if there is none."""
        c = crawls.c
        query = select(c.id, c.seeds, c.settings, c.status).order_by(c.id.desc()).limit(1)
        query = query.where(c.id == crawl_id) if crawl_id is not None else query.where(c.status == RUNNING)
        row = self.read(lambda conn: conn.execute(query).first())
        if row is None:
            raise StoreError(f"no crawl {crawl_id} in this database" if crawl_id is not None else
                             "no running crawl in this database: start one with `crawl SEEDS --frontier ...`")
        if row.status == FINISHED:
            raise StoreError(f"crawl {row.id} is finished")
        return row.id, json.loads(row.seeds), row.settings

    def crawl(self, crawl_id: int | None = None) -> tuple[int, list[str], str, int | None]:
        """(id, seeds, settings JSON, recrawl_of) of the crawl, or of the latest; StoreError if none."""
        c = crawls.c
        query = select(c.id, c.seeds, c.settings, c.recrawl_of).order_by(c.id.desc()).limit(1)
        row = self.read(lambda conn: conn.execute(query if crawl_id is None else query.where(c.id == crawl_id)).first())
        if row is None:
            raise StoreError("no crawl in this database" if crawl_id is None else f"no crawl {crawl_id} in this database")
        return row.id, json.loads(row.seeds), row.settings, row.recrawl_of

    def earlier_urls(self, crawl_id: int) -> list[tuple[str, int, dict[str, str]]]:
        """(url, depth, validators) of every URL the crawl stored: what a recrawl of it fetches."""
        return self.read(lambda conn: list(earlier_urls(conn, crawl_id)))

    def seed_redirects(self, crawl_id: int) -> list[tuple[str, str]]:
        """(seed, target) of each seed (depth 0) the crawl stored as a redirect to another URL."""
        p = pages.c
        query = select(p.url, p.final_url).where(p.crawl_id == crawl_id, p.depth == 0, p.status >= 300,
                                                 p.status < 400, p.final_url != p.url)
        return self.read(lambda conn: [(url, final) for url, final in conn.execute(query)])

    def resume(self, crawl_id: int) -> None:
        """Mark the crawl running again."""
        self.write(lambda conn: self._set_status(conn, crawl_id, RUNNING, finished_at=None))

    def page_count(self, crawl_id: int) -> int:
        """Page rows the crawl has (what --max-pages counts, also across a resume)."""
        query = select(func.count()).select_from(pages).where(pages.c.crawl_id == crawl_id)
        return self.read(lambda conn: conn.execute(query).scalar_one())

    def finish_crawl(self, crawl_id: int, status: str) -> None:
        """Close the crawl with `status` (finished or interrupted) at the current time."""
        self.write(lambda conn: self._set_status(conn, crawl_id, status, finished_at=now()))

    def finish_once(self, crawl_id: int) -> None:
        """Mark a shared crawl finished, unless a worker already did (its finished_at stays the first)."""
        c = crawls.c
        query = update(crawls).where(c.id == crawl_id, c.status != FINISHED).values(status=FINISHED,
                                                                                     finished_at=now())
        self.write(lambda conn: conn.execute(query))

    def _set_status(
        self, conn: Connection, crawl_id: int, status: str, finished_at: dt.datetime | None
    ) -> None:
        query = update(crawls).where(crawls.c.id == crawl_id).values(status=status, finished_at=finished_at)
        if conn.execute(query).rowcount != 1:
            raise StoreError(f"no crawl {crawl_id} in this database")

    def stats(self, crawl_id: int | None = None) -> dict[str, Any]:
        """Figures for `crawl stats` about the given crawl, or the latest one."""
        from crawler.store.query import QueryError
        from crawler.store.stats import crawl_stats

        with self.engine.connect() as conn:
            try:
                return crawl_stats(conn, crawl_id)
            except QueryError as e:
                raise StoreError(str(e)) from None

    # -- runs -----------------------------------------------------------------------------------

    def start_run(self, crawl_id: int) -> int:
        """A runs row for this process on the crawl; its id."""
        at = now()
        row = {"crawl_id": crawl_id, "host": socket.gethostname(), "pid": os.getpid(), "started_at": at,
               "alive_at": at, "pages": 0}
        return self.write(lambda conn: conn.execute(runs.insert().values(row).returning(runs.c.id)).scalar_one())

    def live_runs(self, crawl_id: int) -> list[Run]:
        """The crawl's runs not ended whose process is still there (see Run.is_live)."""
        c = runs.c
        query = select(c.id, c.host, c.pid, c.alive_at).where(c.crawl_id == crawl_id, c.ended_at.is_(None))
        found = self.read(lambda conn: [Run(r.id, r.host, r.pid, r.alive_at) for r in conn.execute(query)])
        at = now()
        return [run for run in found if run.is_live(at)]

    def beat(self, run_id: int, pages_stored: int, ended: bool = False) -> None:
        """The run's heartbeat, with the page rows it stored; `ended` closes it."""
        values: dict[str, Any] = {"alive_at": now(), "pages": runs.c.pages + pages_stored}
        if ended:
            values["ended_at"] = values["alive_at"]
        self.write(lambda conn: conn.execute(update(runs).where(runs.c.id == run_id).values(values)))


class CrawlPages:
    """The Sink of one crawl in a Store (see crawler.store.Sink)."""

    def __init__(self, store: Store, crawl_id: int, run_id: int | None, recrawl_of: int | None = None) -> None:
        self.store, self.crawl_id, self.run_id, self.recrawl_of = store, crawl_id, run_id, recrawl_of
        self.unreported = 0  # pages stored since the last heartbeat
        self.last_beat = time.monotonic()

    def save(self, outcomes: Sequence[Outcome]) -> None:
        """Store the outcomes' pages and links in one transaction; a URL already stored is skipped."""
        if outcomes:
            self.unreported += self.store.write(lambda conn: save_pages(conn, self.crawl_id, outcomes,
                                                                        self.recrawl_of))
        self.alive()

    def count(self) -> int:
        return self.store.page_count(self.crawl_id)

    def alive(self) -> None:
        """Beat the run's heartbeat if HEARTBEAT seconds have passed since the last."""
        if self.run_id is not None and time.monotonic() - self.last_beat >= HEARTBEAT:
            self.close(ended=False)

    def close(self, ended: bool = True) -> None:
        """Report the pages stored since the last beat; `ended` marks the run's end."""
        if self.run_id is not None:
            self.store.beat(self.run_id, self.unreported, ended)
        self.unreported, self.last_beat = 0, time.monotonic()


def utc(timestamp: float) -> dt.datetime | None:
    return dt.datetime.fromtimestamp(timestamp, dt.UTC) if timestamp else None


def page_row(crawl_id: int, outcome: Outcome) -> dict[str, Any]:
    """The pages row of one outcome (HTML fields NULL when there is no extracted Page)."""
    job, response, page = outcome.job, outcome.response, outcome.page
    length = response.length if response.length is not None else len(response.body)
    return {
        "crawl_id": crawl_id,
        "url": job.url,
        "final_url": response.final_url or job.url,
        "depth": job.depth,
        "status": response.status,
        "error": response.error,
        "content_type": response.content_type or None,
        "length": length,
        "fetched_at": utc(response.fetched_at),
        "elapsed_ms": response.elapsed_ms,
        "content_hash": response.content_hash,
        "encoding": page.encoding if page else None,
        "kind": page.kind if page else None,
        "etag": response.headers.get("etag"),
        "last_modified": response.headers.get("last-modified"),
        "unchanged": False,
        "title": page.title if page else None,
        "description": page.description if page else None,
        "text": page.text if page else None,
        "canonical": page.canonical if page else None,
        "noindex": page.noindex if page else False,
    }


def save_pages(conn: Connection, crawl_id: int, outcomes: Sequence[Outcome], recrawl_of: int | None = None) -> int:
    """Insert-or-ignore the pages (a URL twice in one batch: the first wins), then the links of those
    actually inserted (bulk_insert_new skips the ignored); how many pages were inserted. In a recrawl the 304s
    inserted take the earlier crawl's fields and links (crawler.store.recrawl)."""
    unique: dict[str, Outcome] = {}
    for outcome in outcomes:
        unique.setdefault(outcome.job.url, outcome)
    rows = [page_row(crawl_id, o) for o in unique.values()]
    page_ids = {url: id_ for id_, url in bulk_insert_new(conn, pages, rows, "id", "url")}
    link_rows = [
        {"page_id": page_ids[o.job.url], "url": link.url, "anchor": link.anchor, "lastmod": link.lastmod,
         "nofollow": link.nofollow}
        for o in unique.values()
        if o.page is not None and o.job.url in page_ids
        for link in o.page.links
    ]
    if link_rows:
        bulk_insert(conn, links, link_rows)
    if recrawl_of is not None:
        carry_forward(conn, recrawl_of, [page_ids[o.job.url] for o in unique.values()
                                         if o.response.status == 304 and o.job.url in page_ids])
    return len(page_ids)
