"""The SQL plumbing under the store and the SQL frontier: engines, write transactions, migrations, errors.

SQLite by default (a bare path is accepted where a URL is expected), PostgreSQL with the same tables.
SQLite runs in WAL mode (readers never wait for the writer), synchronous=NORMAL, with a busy timeout;
write transactions start with BEGIN IMMEDIATE so a lock is met up front, never half-way. A database
locked by another process for longer than the busy timeout is retried with backoff for up to
`lock_wait` seconds, then reported as a StoreError. Every failure to open, migrate or write reaches
the caller as a StoreError with a one-line message, never a driver traceback.

The schema is migrated with alembic on open (`upgrade`), the same way the tests do it. A reader
(`make_engine(readonly=True)`, `sqlite_readonly_connect`) changes nothing: the file is opened with
`mode=ro`, its journal mode left as it is, and a file or directory the user cannot write is fine.
"""

from __future__ import annotations

import os
import sqlite3
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import Connection, Engine, create_engine, event, inspect
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DBAPIError, OperationalError, SQLAlchemyError
from sqlalchemy.pool import NullPool

if TYPE_CHECKING:
    from alembic.config import Config

T = TypeVar("T")

# Installed: crawler/migrations (see pyproject's package-dir); from a checkout: the repo's migrations/.
HERE = Path(__file__).resolve().parent
MIGRATIONS = next(p for p in (HERE.parent / "migrations", HERE.parent.parent / "migrations") if p.is_dir())
HEAD = "0006"  # the newest migration's revision (tests/integration/test_store.py holds it to migrations/)
BUSY_TIMEOUT = 1.0  # seconds SQLite itself waits for a lock; longer waits are run_write's retries, which
# sleep in Python: signals are handled and (under gevent) the other greenlets keep running meanwhile
LOCK_WAIT = 300.0  # seconds in total a write keeps retrying a locked database
TELL_LOCK_AFTER = 2.0  # seconds of waiting for a lock after which the user is told what the crawl waits for
WRITE = "crawler_write"  # execution option: begin with BEGIN IMMEDIATE on SQLite
LOCK_WAIT_OPTION = "crawler_lock_wait"
GIVE_UP_OPTION = "crawler_give_up"  # a callable: when true, a write stops waiting for a lock


class StoreError(Exception):
    """The database cannot be opened, migrated or written; the message is one line for humans."""


class DatabaseRefused(StoreError):
    """A database a crawl will not use (in memory, another application's): bad input, not a failure."""


def database_url(db: str) -> str:
    """A SQLAlchemy URL for `db`: a bare path becomes sqlite:///<absolute path>; postgresql:// (and
    postgres://) use psycopg 3, the driver that ships with crawler; other URLs pass through. `:memory:`
    is SQLite's name for an in-memory database, not a file's (`./:memory:` is one)."""
    if db == ":memory:":
        return "sqlite:///:memory:"
    for scheme in ("postgresql://", "postgres://"):
        if db.startswith(scheme):
            return "postgresql+psycopg://" + db.removeprefix(scheme)
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


def is_disconnect(error: DBAPIError) -> bool:
    """The connection to a database server was lost or refused (PostgreSQL restarted, a backend killed)."""
    return error.connection_invalidated or isinstance(error, OperationalError) and not is_locked(error)


def run_write(engine: Engine, fn: Callable[[Connection], T]) -> T:
    """Run `fn` in one write transaction; retry it while SQLite reports a lock, or while a database server
    cannot be reached (each write is idempotent or rolled back whole), up to the lock wait. Meanwhile
    the caller waits: a crawl stops claiming until its writes go through."""
    return _retried(engine.execution_options(**{WRITE: True}), fn)


def run_read(engine: Engine, fn: Callable[[Connection], T]) -> T:
    """Run `fn` in one read transaction, retried as run_write's are: a crawl's reads outlive a database
    server's restart (or a killed connection) as its writes do."""
    return _retried(engine, fn)


def _retried(engine: Engine, fn: Callable[[Connection], T]) -> T:
    options = engine.get_execution_options()
    lock_wait, give_up = options.get(LOCK_WAIT_OPTION, LOCK_WAIT), options.get(GIVE_UP_OPTION)
    began, delay, told, told_lock = time.monotonic(), 0.05, False, False
    while True:
        try:
            with engine.begin() as conn:
                result = fn(conn)
            if told:
                print("crawl: the database is reachable again", file=sys.stderr)
            return result
        except DBAPIError as e:
            lost = engine.dialect.name != "sqlite" and is_disconnect(e)
            if not (is_locked(e) or lost):
                raise StoreError(f"database error: {first_line(e)}") from e
            waited = time.monotonic() - began
            if waited + delay > lock_wait or (give_up and give_up()):
                if lost:
                    raise StoreError(f"database unreachable for {waited:.0f} s: {first_line(e)}") from None
                raise StoreError(f"database is locked by another process (waited {waited:.1f} s)") from None
            if lost and not told:
                print(f"crawl: database unreachable ({first_line(e)}); retrying", file=sys.stderr)
                told = True
            if not lost and not told_lock and waited >= TELL_LOCK_AFTER:
                print(f"crawl: waiting for the database lock (another process is writing to {shown(engine.url)})",
                      file=sys.stderr)
                told_lock = True
        time.sleep(delay)
        delay = min(delay * 2, 1.0 if delay < 1.0 else 2.0)


def alembic_config(connection: Connection | None = None) -> Config:
    """The alembic Config, built in code: script_location is the repo's migrations/ folder."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("path_separator", "os")
    cfg.attributes["connection"] = connection
    return cfg


def upgrade(engine: Engine) -> None:
    """Migrate the database to the newest revision (alembic `upgrade head`) in one transaction. A
    database already at HEAD is left alone without importing alembic (a fifth of a crawl's start-up)."""

    def migrate(conn: Connection) -> None:
        if revision(conn) == HEAD:
            return
        from alembic import command
        from alembic.util import CommandError

        try:
            command.upgrade(alembic_config(conn), "head")
        except CommandError as error:  # a revision this version does not know, say: a newer crawler's
            raise StoreError(first_line(error)) from error

    run_write(engine, migrate)


def revision(conn: Connection) -> str | None:
    """The database's alembic revision; None before the first migration."""
    if not inspect(conn).has_table("alembic_version"):
        return None
    return conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar()


def refuse_foreign(db: str) -> None:
    """DatabaseRefused if `db` holds tables but no alembic_version: another application's database,
    which migrating would write into."""
    names = table_names(db)
    if names and "alembic_version" not in names:
        listed = ", ".join(names[:3]) + (", ..." if len(names) > 3 else "")
        raise DatabaseRefused(f"{shown(make_url(database_url(db)))} holds another application's tables "
                              f"({listed}) and no alembic_version: not migrating into it; give a new file "
                              "or an empty database")


def table_names(db: str) -> list[str] | None:
    """The tables of `db`, read through a read-only engine (nothing is created, migrated or changed,
    not even SQLite's journal mode); [] for a SQLite file not there yet; None if they cannot be read
    (opening `db` to write says why)."""
    url = make_url(database_url(db))
    path = url.database if url.get_backend_name() == "sqlite" else None
    if path and path != ":memory:" and not Path(path).exists():
        return []
    try:
        engine = make_engine(db, readonly=True)
    except StoreError:
        return None
    try:
        with engine.connect() as conn:
            return sorted(inspect(conn).get_table_names())
    except (StoreError, SQLAlchemyError):
        return None
    finally:
        engine.dispose()


def check_sqlite_path(path: str | None, create: bool, write: bool = True) -> None:
    """Refuse, with a readable message, the paths SQLite would fail on with a bare 'unable to open'
    (to `write`, SQLite needs the directory too, for its journal)."""
    if not path or path == ":memory:":
        raise DatabaseRefused("an in-memory SQLite database is empty and gone when the command ends, so it "
                              "cannot hold a crawl: give a file path (./:memory: names a file)")
    file, parent = Path(path), Path(path).parent
    if file.is_dir():
        raise StoreError(f"{path} is a directory, not a database file")
    if not file.exists() and not create:
        raise StoreError(f"no database at {path}")
    if not write:
        return
    if not parent.is_dir():
        problem = "is not a directory" if parent.exists() else "does not exist"
        raise StoreError(f"cannot create {path}: {parent} {problem}")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise StoreError(f"cannot write to directory {parent} (SQLite needs it for its journal)")


def sqlite_readonly_connect(path: str, timeout: float) -> sqlite3.Connection:
    """`path` opened read-only (`mode=ro`), with trusted_schema off (a view or trigger of the file calls
    only functions SQLite marks innocuous); StoreError if it cannot be read.

    A WAL database needs its -shm file, which SQLite cannot create in a directory the user may not
    write (SQLITE_READONLY_DIRECTORY): with no -wal file beside it, every commit is in the file itself,
    which is then read as `immutable` (without locks: a writer would need that directory, so only one
    with more rights than this user could write meanwhile); with one, the commits in it cannot be
    read, and the open fails."""
    uri = Path(path).resolve().as_uri() + "?mode=ro"
    try:
        try:
            conn = opened(uri, timeout)
        except sqlite3.OperationalError as e:
            if e.sqlite_errorname != "SQLITE_READONLY_DIRECTORY" or Path(f"{path}-wal").exists():
                raise
            conn = opened(uri + "&immutable=1", timeout)
    except sqlite3.Error as e:
        raise StoreError(open_failure(path, e)) from None
    conn.execute("PRAGMA trusted_schema = OFF")
    return conn


def open_failure(path: str, error: sqlite3.Error) -> str:
    """Why SQLite could not open `path` to read it, in one line."""
    parent = Path(path).parent
    if "file is not a database" in str(error):
        return f"{path} is not a SQLite database"
    if Path(f"{path}-wal").exists() and not Path(f"{path}-shm").exists() and not os.access(parent, os.W_OK):
        return (f"cannot read {path}: the commits in its -wal file need a -shm file, which SQLite cannot "
                f"create in {parent} (not writable)")
    return f"cannot open {path}: {first_line(error)}"


def opened(uri: str, timeout: float) -> sqlite3.Connection:
    """A connection to the SQLite file `uri`, its header read (SQLite opens a file lazily)."""
    conn = sqlite3.connect(uri, uri=True, timeout=timeout)
    try:
        conn.execute("PRAGMA schema_version").fetchall()
    except sqlite3.Error:
        conn.close()
        raise
    return conn


def sqlite_engine(url: URL, busy_timeout: float, readonly: bool = False) -> Engine:
    """A SQLite engine that emits its own BEGIN (IMMEDIATE for writes, see run_write): in WAL mode, or,
    `readonly`, through sqlite_readonly_connect, changing nothing."""
    if readonly:
        opener = partial(sqlite_readonly_connect, url.database or "", busy_timeout)
        engine = create_engine(url, creator=opener, poolclass=NullPool)
    else:
        engine = create_engine(url, connect_args={"timeout": busy_timeout})

    @event.listens_for(engine, "connect")
    def on_connect(dbapi_connection: Any, record: Any) -> None:
        dbapi_connection.isolation_level = None  # SQLAlchemy emits BEGIN below, not the sqlite3 module
        for pragma in () if readonly else ("journal_mode=WAL", "synchronous=NORMAL"):  # (timeout: busy)
            dbapi_connection.execute(f"PRAGMA {pragma}").fetchall()

    @event.listens_for(engine, "begin")
    def on_begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get(WRITE) else "BEGIN")

    return engine


def make_engine(db: str, *, create: bool = True, readonly: bool = False, busy_timeout: float = BUSY_TIMEOUT
                ) -> Engine:
    """An engine for `db` (path or URL): SQLite set up for a crawl (or, `readonly`, to read an existing
    file as it is), or PostgreSQL."""
    url = make_url(database_url(db))
    backend = url.get_backend_name()
    if backend == "sqlite":
        check_sqlite_path(url.database, create and not readonly, write=not readonly)
        return sqlite_engine(url, busy_timeout, readonly)
    if backend == "postgresql":
        return create_engine(url, pool_pre_ping=True)  # a server restarted: stale connections are replaced
    raise StoreError(f"unsupported database {url.drivername!r}: use a SQLite path or a postgresql:// URL")


def without_password(db: str) -> str:
    """`db` as it may be stored or printed: a URL's password masked (***), anything else as given."""
    if "://" not in db:
        return db
    try:
        url = make_url(db)
    except Exception:  # noqa: BLE001 (not a URL SQLAlchemy reads: opening it fails later, with a message)
        return db
    return url.render_as_string(hide_password=True) if url.password else db


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


