"""Store: the database a crawl lives in (crawls, frontier, pages, links) and the engine that reaches it.

SQLite by default (a bare path is accepted where a URL is expected), PostgreSQL with the same tables.
SQLite runs in WAL mode (readers never wait for the writer), synchronous=NORMAL, with a busy timeout;
write transactions start with BEGIN IMMEDIATE so a lock is met up front, never half-way. A database
locked by another process for longer than the busy timeout is retried with backoff for up to
`lock_wait` seconds, then reported as a StoreError. Every failure to open, migrate or write reaches
the caller as a StoreError with a one-line message, never a driver traceback.

The schema is migrated with alembic on open (`upgrade`), the same way the tests do it.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sqlite3
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self, TypeVar

from alembic import command
from alembic.config import Config
from alembic.util import CommandError
from sqlalchemy import Connection, Engine, create_engine, event, func, select, update
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from crawler.batch import queue, save_batch
from crawler.records import Outcome
from crawler.schema import (
    CLAIMED,
    QUEUED,
    RUNNING,
    crawls,
    frontier,
    pages,
)
from crawler.urls import host_of

if TYPE_CHECKING:
    from crawler.frontier.sql import SqlFrontier

T = TypeVar("T")

# Installed: crawler/migrations (see pyproject's package-dir); from a checkout: the repo's migrations/.
MIGRATIONS = next(
    p for p in (Path(__file__).resolve().parent / "migrations", Path(__file__).resolve().parent.parent / "migrations")
    if p.is_dir()
)
BUSY_TIMEOUT = 1.0  # seconds SQLite itself waits for a lock; longer waits are run_write's retries, which
# sleep in Python: signals are handled and (under gevent) the other greenlets keep running meanwhile
LOCK_WAIT = 300.0  # seconds in total a write keeps retrying a locked database
WRITE = "crawler_write"  # execution option: begin with BEGIN IMMEDIATE on SQLite
LOCK_WAIT_OPTION = "crawler_lock_wait"
GIVE_UP_OPTION = "crawler_give_up"  # a callable: when true, a write stops waiting for a lock


class StoreError(Exception):
    """The database cannot be opened, migrated or written; the message is one line for humans."""


def database_url(db: str) -> str:
    """A SQLAlchemy URL for `db`: URLs pass through, a bare path becomes sqlite:///<absolute path>."""
    if "://" in db:
        return db
    return "sqlite:///" + os.path.abspath(os.path.expanduser(db))


def first_line(error: BaseException) -> str:
    """The driver's own message (not SQLAlchemy's wrapping), first line only."""
    orig = getattr(error, "orig", None) or error
    lines = str(orig).strip().splitlines()
    return lines[0] if lines else type(orig).__name__


def is_locked(error: BaseException) -> bool:
    """SQLite's SQLITE_BUSY / SQLITE_LOCKED ("database is locked", "database table is locked")."""
    orig = getattr(error, "orig", error)
    return isinstance(orig, sqlite3.OperationalError) and "is locked" in str(orig)


def run_write(engine: Engine, fn: Callable[[Connection], T]) -> T:
    """Run `fn` in one write transaction; retry it while SQLite reports a lock, up to the lock wait."""
    options = engine.get_execution_options()
    lock_wait, give_up = options.get(LOCK_WAIT_OPTION, LOCK_WAIT), options.get(GIVE_UP_OPTION)
    began, delay = time.monotonic(), 0.05
    writer = engine.execution_options(**{WRITE: True})
    while True:
        try:
            with writer.begin() as conn:
                return fn(conn)
        except DBAPIError as e:
            if not is_locked(e):
                raise StoreError(f"database error: {first_line(e)}") from e
            waited = time.monotonic() - began
            if waited + delay > lock_wait or (give_up and give_up()):
                raise StoreError(f"database is locked by another process (waited {waited:.1f} s)") from None
        time.sleep(delay)
        delay = min(delay * 2, 1.0)


def alembic_config(connection: Connection | None = None) -> Config:
    """The alembic Config, built in code: script_location is the repo's migrations/ folder."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("path_separator", "os")
    cfg.attributes["connection"] = connection
    return cfg


def upgrade(engine: Engine) -> None:
    """Migrate the database to the newest revision (alembic `upgrade head`) in one transaction."""

    def migrate(conn: Connection) -> None:
        command.upgrade(alembic_config(conn), "head")

    run_write(engine, migrate)


def check_sqlite_path(path: str | None, create: bool) -> None:
    """Refuse, with a readable message, the paths SQLite would fail on with a bare 'unable to open'."""
    if not path or path == ":memory:":
        raise StoreError("an in-memory SQLite database cannot hold a crawl; give a file path")
    file, parent = Path(path), Path(path).parent
    if file.is_dir():
        raise StoreError(f"{path} is a directory, not a database file")
    if not file.exists() and not create:
        raise StoreError(f"no database at {path}")
    if not parent.is_dir():
        problem = "is not a directory" if parent.exists() else "does not exist"
        raise StoreError(f"cannot create {path}: {parent} {problem}")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise StoreError(f"cannot write to directory {parent} (SQLite needs it for its journal)")


def sqlite_engine(url: URL, busy_timeout: float) -> Engine:
    """A SQLite engine in WAL mode that emits its own BEGIN (IMMEDIATE for writes, see run_write)."""
    engine = create_engine(url, connect_args={"timeout": busy_timeout})

    @event.listens_for(engine, "connect")
    def on_connect(dbapi_connection: Any, record: Any) -> None:
        dbapi_connection.isolation_level = None  # SQLAlchemy emits BEGIN below, not the sqlite3 module
        for pragma in ("journal_mode=WAL", "synchronous=NORMAL"):  # (the busy timeout is `timeout`)
            dbapi_connection.execute(f"PRAGMA {pragma}").fetchall()

    @event.listens_for(engine, "begin")
    def on_begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get(WRITE) else "BEGIN")

    return engine


def make_engine(db: str, *, create: bool = True, busy_timeout: float = BUSY_TIMEOUT) -> Engine:
    """An engine for `db` (path or URL): SQLite set up for a crawl, or PostgreSQL."""
    url = make_url(database_url(db))
    backend = url.get_backend_name()
    if backend == "sqlite":
        check_sqlite_path(url.database, create)
        return sqlite_engine(url, busy_timeout)
    if backend == "postgresql":
        return create_engine(url)
    raise StoreError(f"unsupported database {url.drivername!r}: use a SQLite path or a postgresql:// URL")


def open_store(
    db: str, *, create: bool = True, busy_timeout: float = BUSY_TIMEOUT, lock_wait: float = LOCK_WAIT
) -> Store:
    """Open (creating and migrating as needed) the database at `db`; StoreError if that is impossible."""
    engine = make_engine(db, create=create, busy_timeout=busy_timeout)
    try:
        upgrade(engine.execution_options(**{LOCK_WAIT_OPTION: lock_wait}))
    except (StoreError, SQLAlchemyError, CommandError, OSError) as e:
        engine.dispose()
        raise StoreError(f"cannot open {shown(engine.url)}: {reason(e)}") from e
    return Store(engine, lock_wait)


def shown(url: URL) -> str:
    """How a database is named in messages: the SQLite file path, or the URL without its password."""
    return (
        url.database or "" if url.get_backend_name() == "sqlite" else url.render_as_string(hide_password=True)
    )


def reason(error: BaseException) -> str:
    message = str(error) if isinstance(error, StoreError) else first_line(error)
    if "file is not a database" in message:
        return "not a SQLite database"
    return message.removeprefix("database error: ")


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Store:
    """Crawls, their pages and their frontier, in one database. Methods are safe to call from threads."""

    def __init__(
        self, engine: Engine, lock_wait: float = LOCK_WAIT, give_up: Callable[[], bool] | None = None
    ) -> None:
        self._base, self._lock_wait = engine, lock_wait
        self.engine = engine.execution_options(**{LOCK_WAIT_OPTION: lock_wait, GIVE_UP_OPTION: give_up})

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._base.dispose()

    def write(self, fn: Callable[[Connection], T]) -> T:
        return run_write(self.engine, fn)

    def impatient(self, give_up: Callable[[], bool]) -> Store:
        """This store, waiting no longer for a locked database once `give_up()` (a crawl stopping)."""
        return Store(self._base, self._lock_wait, give_up)

    def frontier(self, crawl_id: int) -> SqlFrontier:
        """The crawl's SqlFrontier, on this store's engine."""
        from crawler.frontier.sql import SqlFrontier

        return SqlFrontier(self.engine, crawl_id)

    def start_crawl(self, seeds: list[str], settings_json: str, *, queue_seeds: bool = False) -> int:
        """A new crawl, status running; its id. With queue_seeds, its frontier gets the seeds (depth 0)
        in the same transaction, so a crash never leaves a crawl without a frontier."""
        row = {"started_at": now(), "status": RUNNING, "seeds": json.dumps(seeds), "settings": settings_json}

        def run(conn: Connection) -> int:
            crawl_id = conn.execute(crawls.insert().values(row).returning(crawls.c.id)).scalar_one()
            queue(conn, crawl_id, [(url, host_of(url), 0) for url in seeds] if queue_seeds else [])
            return crawl_id

        return self.write(run)

    def latest_unfinished(self) -> tuple[int, list[str], str] | None:
        """(id, seeds, settings JSON) of the newest crawl not finished, if any."""
        query = select(crawls.c.id, crawls.c.seeds, crawls.c.settings).where(crawls.c.status != "finished")
        with self.engine.connect() as conn:
            row = conn.execute(query.order_by(crawls.c.id.desc()).limit(1)).first()
        return None if row is None else (row.id, json.loads(row.seeds), row.settings)

    def resume(self, crawl_id: int) -> int:
        """Mark the crawl running again and requeue what it had claimed; how many jobs were requeued."""

        def run(conn: Connection) -> int:
            self._set_status(conn, crawl_id, RUNNING, finished_at=None)
            claimed = (frontier.c.crawl_id == crawl_id) & (frontier.c.state == CLAIMED)
            return conn.execute(update(frontier).where(claimed).values(state=QUEUED)).rowcount

        return self.write(run)

    def page_count(self, crawl_id: int) -> int:
        """Page rows the crawl has (what --max-pages counts, also across a resume)."""
        query = select(func.count()).select_from(pages).where(pages.c.crawl_id == crawl_id)
        with self.engine.connect() as conn:
            return conn.execute(query).scalar_one()

    def finish_crawl(self, crawl_id: int, status: str) -> None:
        """Close the crawl with `status` (finished or interrupted) at the current time."""
        self.write(lambda conn: self._set_status(conn, crawl_id, status, finished_at=now()))

    def _set_status(
        self, conn: Connection, crawl_id: int, status: str, finished_at: dt.datetime | None
    ) -> None:
        query = update(crawls).where(crawls.c.id == crawl_id).values(status=status, finished_at=finished_at)
        if conn.execute(query).rowcount != 1:
            raise StoreError(f"no crawl {crawl_id} in this database")

    def save(
        self,
        crawl_id: int,
        outcomes: list[Outcome],
        discovered: Iterable[tuple[str, str, int]],
        shallower: Iterable[tuple[str, int]] = (),
    ) -> None:
        """Record fetched outcomes and the URLs they discovered, in one transaction.

        Pages already saved (a refetch after a crash) are skipped with their links; the jobs' frontier
        rows become done; a redirect target becomes done too, so it is never fetched on its own; the
        discovered (url, host, depth) are queued unless the frontier already knows them; a URL of
        `shallower` (url, depth) still queued at a greater depth takes the smaller one.
        """
        new, lower = list(discovered), list(shallower)
        self.write(lambda conn: save_batch(conn, crawl_id, outcomes, new, lower))

    def stats(self, crawl_id: int | None = None) -> dict[str, Any]:
        """Figures for `crawl stats` about the given crawl, or the latest one."""
        from crawler.query import QueryError, crawl_stats

        with self.engine.connect() as conn:
            try:
                return crawl_stats(conn, crawl_id)
            except QueryError as e:
                raise StoreError(str(e)) from None
