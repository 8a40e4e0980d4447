"""Query: read-only SQL over a crawl database (`crawl sql`, the listings of crawls and pages) and its output.

A query may read, never write. Three fences, any one of which refuses a write:
1. the statement must start with a reading keyword (SELECT, WITH, VALUES, EXPLAIN, PRAGMA, TABLE, SHOW);
2. SQLite: the file is opened read-only (`mode=ro`), with trusted_schema off (a view or trigger of a
   hostile file calls no function SQLite does not mark innocuous), and an authorizer allows only
   reads, functions but the UNSAFE ones (reaching outside the database: fts3_tokenizer's native
   pointers, load_extension, the shell's file functions, whatever SQLite marks direct-only),
   recursive CTEs and introspection PRAGMAs; PostgreSQL: a READ ONLY transaction, rolled back, and,
   when the connection is a superuser's (who may read server files, signal backends...), the role
   pg_read_all_data for the query (PostgreSQL 14+; older servers refuse a superuser); functions that
   reach outside the database or change the role (OUTSIDE) are refused by name before it runs;
3. one statement only (sqlite3 refuses more; on PostgreSQL the query is a prepared statement, which
   cannot hold two), so `SELECT 1; DELETE ...` never reaches the DELETE.
Every failure is a QueryError with a one-line message.
"""

from __future__ import annotations

import io
import itertools
import json
import re
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from decimal import Decimal
from functools import partial
from typing import Any, TextIO, TypeVar

from sqlalchemy import Connection, Row, create_engine, func, select
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import NullPool

from crawler.export import WRITERS, page_rows, plain
from crawler.store.db import (
    StoreError,
    check_sqlite_path,
    database_url,
    first_line,
    make_engine,
    sqlite_readonly_connect,
)
from crawler.store.schema import UtcDateTime, crawls, pages, runs
from crawler.terminal import safe

T = TypeVar("T")

READING = {"SELECT", "WITH", "VALUES", "EXPLAIN", "PRAGMA", "TABLE", "SHOW"}
ALLOWED = {sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_FUNCTION, sqlite3.SQLITE_RECURSIVE}
INTROSPECTION = {  # PRAGMAs that only read, whatever their argument
    "table_info", "table_xinfo", "table_list", "index_list", "index_info", "index_xinfo",
    "foreign_key_list", "database_list", "collation_list", "function_list", "module_list", "pragma_list",
    "compile_options", "integrity_check", "quick_check",
}  # fmt: skip
# SQLite functions and table-valued functions that reach outside the database (pointers, native code,
# files: the last four are the sqlite3 shell's, refused should a build carry them)
UNSAFE = {"fts3_tokenizer", "load_extension", "readfile", "writefile", "edit", "fsdir", "zipfile"}
DIRECT_ONLY = 0x80000  # SQLITE_DIRECTONLY in pragma_function_list.flags: SQLite's own "unsafe" mark
ACTING = {"optimize", "wal_checkpoint", "incremental_vacuum", "shrink_memory"}  # act even without a value
ACTIONS = {  # authorizer action code -> what the message calls it
    getattr(sqlite3, f"SQLITE_{name}"): name.replace("_", " ")
    for name in (
        "INSERT", "UPDATE", "DELETE", "CREATE_TABLE", "CREATE_INDEX", "CREATE_VIEW", "CREATE_TRIGGER",
        "CREATE_TEMP_TABLE", "CREATE_TEMP_INDEX", "CREATE_TEMP_VIEW", "CREATE_TEMP_TRIGGER", "CREATE_VTABLE",
        "DROP_TABLE", "DROP_INDEX", "DROP_VIEW", "DROP_TRIGGER", "DROP_TEMP_TABLE", "DROP_TEMP_INDEX",
        "DROP_TEMP_VIEW", "DROP_TEMP_TRIGGER", "DROP_VTABLE", "ALTER_TABLE", "ATTACH", "DETACH", "REINDEX",
        "ANALYZE", "TRANSACTION", "SAVEPOINT",
    )
}  # fmt: skip
WRITING = {"INSERT", "REPLACE", "UPDATE", "DELETE", "MERGE", "UPSERT", "CREATE", "DROP", "ALTER", "TRUNCATE",
           "ATTACH", "DETACH", "VACUUM", "REINDEX", "ANALYZE", "COPY", "GRANT", "REVOKE"}  # fmt: skip
# PostgreSQL functions a query may not name (anywhere, strings included: query_to_xml runs a string),
# nor may it write an identifier in Unicode escapes (U&"...") that could spell one.
OUTSIDE = re.compile(
    r"\b(set_config|pg_read_\w*file|pg_ls_\w+|pg_stat_file|pg_file_\w+|lo_\w+|dblink\w*|\w*_to_xml\w*"
    r"|pg_terminate_backend|pg_cancel_backend|pg_reload_conf|pg_rotate_logfile|pg_promote|pg_logical_\w+"
    r"|pg_replication_\w+|pg_create_\w+|pg_drop_\w+|pg_switch_wal|pg_backup_\w+|pg_notify|pg_advisory_\w+"
    r"|pg_import_system_collations)\b|\bu&[\"']",
    re.IGNORECASE,
)
MAX_CELL = 60  # characters shown per cell in table format
MAX_TABLE_ROWS = 1000  # rows the table format shows (it aligns them, so it holds them); csv/json/jsonl: all
PROGRESS_OPS = 10_000  # SQLite VM steps between two calls of the progress handler
READ_TIMEOUT = 30.0  # seconds a query waits for a lock (a WAL reader meets one only while a file recovers)
FETCH_ROWS = 500  # rows read from the cursor at a time


class QueryError(Exception):
    """The query was refused or failed; the message is one line for humans."""


def run_readonly(db: str, sql: str) -> tuple[list[str], list[tuple[Any, ...]]]:
    """(columns, rows) of one read-only statement against `db` (path or URL); QueryError otherwise."""
    with readonly(db, sql) as (columns, rows):
        return columns, list(rows)


@contextmanager
def readonly(db: str, sql: str) -> Iterator[tuple[list[str], Iterator[tuple[Any, ...]]]]:
    """(columns, rows streamed as they are read) of one read-only statement; QueryError otherwise, also
    while iterating. KeyboardInterrupt (Ctrl-C) stops a long query: SQLite runs a progress handler so
    Python sees the signal mid-query; psycopg cancels the query on the server."""
    check_keyword(sql)
    url = make_url(database_url(db))
    if url.get_backend_name() == "sqlite":
        opened = sqlite_readonly(url.database or "", sql)
    elif url.get_backend_name() == "postgresql":
        opened = postgres_readonly(url, sql)
    else:
        raise QueryError(f"unsupported database {url.drivername!r}")
    with opened as result:
        yield result


def first_keyword(sql: str) -> str:
    """The first word of the statement, after comments."""
    text = re.sub(r"^(\s+|--[^\n]*(\n|$)|/\*.*?\*/)*", "", sql, flags=re.DOTALL)
    match = re.match(r"[A-Za-z]+", text)
    return match.group(0).upper() if match else ""


def check_keyword(sql: str) -> None:
    keyword = first_keyword(sql)
    if not keyword:
        raise QueryError("empty query" if not sql.strip() else "refused: not a SQL query")
    if keyword in WRITING:
        raise QueryError(f"refused: the query writes ({keyword})")
    if keyword not in READING:
        raise QueryError(
            f"refused: {keyword} is not a reading statement (SELECT, WITH, VALUES, EXPLAIN, PRAGMA)"
        )


def authorize(
    denied: list[str], unsafe: set[str], action: int, arg1: str | None, arg2: str | None, *_: object
) -> int:
    """sqlite3 authorizer: reads only, and no function in `unsafe`; why the first denied action was
    denied is recorded for the message."""
    named = arg2 if action == sqlite3.SQLITE_FUNCTION else arg1 if action == sqlite3.SQLITE_READ else None
    if named is not None and named.lower() in unsafe:
        denied.append(f"{named}() reaches outside the crawl's tables")
        return sqlite3.SQLITE_DENY
    if action in ALLOWED or (action == sqlite3.SQLITE_UPDATE and arg1 == "sqlite_master"):
        return sqlite3.SQLITE_OK  # (opening the FTS5 table pages_fts asks that of sqlite_master; mode=ro holds)
    if action == sqlite3.SQLITE_PRAGMA and arg1 is not None:
        name = arg1.lower()
        if name in INTROSPECTION or (arg2 is None and name not in ACTING):
            return sqlite3.SQLITE_OK
        denied.append(f"the query writes (PRAGMA {arg1}" + (f"={arg2})" if arg2 is not None else ")"))
        return sqlite3.SQLITE_DENY
    denied.append(f"the query writes ({ACTIONS.get(action, f'action {action}')})")
    return sqlite3.SQLITE_DENY


@contextmanager
def sqlite_readonly(path: str, sql: str) -> Iterator[tuple[list[str], Iterator[tuple[Any, ...]]]]:
    try:
        check_sqlite_path(path, create=False, write=False)
        conn = sqlite_readonly_connect(path, READ_TIMEOUT)
    except StoreError as e:
        raise QueryError(str(e)) from None
    denied: list[str] = []
    try:
        sqlite_call(path, denied, fence, conn, denied)
        cursor = sqlite_call(path, denied, conn.execute, sql)
        yield [d[0] for d in cursor.description or ()], sqlite_rows(path, denied, cursor)
    finally:
        conn.close()


def fence(conn: sqlite3.Connection, denied: list[str]) -> None:
    """The authorizer on (recording in `denied`), and a progress handler that lets Python run its SIGINT
    handler mid-query."""
    conn.set_authorizer(partial(authorize, denied, UNSAFE | direct_only(conn)))
    conn.set_progress_handler(lambda: 0, PROGRESS_OPS)


def direct_only(conn: sqlite3.Connection) -> set[str]:
    """The functions SQLite marks direct-only (never from a view or trigger: it deems them unsafe)."""
    listed = conn.execute("SELECT name, flags FROM pragma_function_list").fetchall()
    return {name.lower() for name, flags in listed if flags & DIRECT_ONLY}


def sqlite_rows(path: str, denied: list[str], cursor: sqlite3.Cursor) -> Iterator[tuple[Any, ...]]:
    while rows := sqlite_call(path, denied, cursor.fetchmany, FETCH_ROWS):
        yield from rows


def sqlite_call(path: str, denied: list[str], fn: Callable[..., T], *args: Any) -> T:
    """fn(*args) with sqlite3's errors as QueryErrors; a query a Ctrl-C interrupted as KeyboardInterrupt
    (the progress handler swallowed the signal's exception and reported `interrupted`)."""
    try:
        return fn(*args)
    except sqlite3.ProgrammingError as e:
        if "one statement" in str(e):
            raise QueryError("refused: one statement at a time") from None
        raise QueryError(f"SQL error: {e}") from None
    except sqlite3.OperationalError as e:
        if str(e) == "interrupted":
            raise KeyboardInterrupt from None
        raise QueryError(sqlite_message(path, e, denied)) from None
    except sqlite3.Error as e:
        raise QueryError(sqlite_message(path, e, denied)) from None


def sqlite_message(path: str, error: sqlite3.Error, denied: list[str]) -> str:
    if denied:
        return f"refused: {denied[0]}"
    if "readonly database" in str(error):
        return "refused: the query writes"
    if "file is not a database" in str(error):
        return f"{path} is not a SQLite database"
    return f"SQL error: {first_line(error)}"


@contextmanager
def postgres_readonly(url: URL, sql: str) -> Iterator[tuple[list[str], Iterator[tuple[Any, ...]]]]:
    """One prepared statement (a second one is a syntax error) in a READ ONLY transaction, rolled back;
    its rows through a server-side cursor, FETCH_ROWS at a time."""
    import psycopg  # the PostgreSQL driver is an optional dependency

    if found := OUTSIDE.search(sql):
        raise QueryError(f"refused: {found.group(0).lower()} reaches outside the crawl's tables")
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("SET TRANSACTION READ ONLY")
            reader_only(conn)
            cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
            rows = postgres_rows(psycopg, cursor.stream(sql))
            try:
                first = next(rows, None)  # the query runs, and fails, before any output is written
                yield [d.name for d in cursor.description or ()], itertools.chain(() if first is None else [first], rows)
            finally:
                cursor.close()
                conn.rollback()
    except SQLAlchemyError as e:
        raise QueryError(f"cannot connect to {url.render_as_string()}: {first_line(e)}") from None
    finally:
        engine.dispose()


def reader_only(conn: Connection) -> None:
    """A superuser's connection reads as pg_read_all_data for this transaction (it may read every
    table, and nothing outside them); without that role (PostgreSQL < 14) it is refused."""
    if not conn.exec_driver_sql("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").scalar():
        return
    if conn.exec_driver_sql("SELECT 1 FROM pg_roles WHERE rolname = 'pg_read_all_data'").scalar() is None:
        raise QueryError("refused: connected as a superuser to PostgreSQL < 14; connect as a role that "
                         "may only read the crawl's tables")
    conn.exec_driver_sql("SET LOCAL ROLE pg_read_all_data")


def postgres_rows(psycopg: Any, stream: Iterator[tuple[Any, ...]]) -> Iterator[tuple[Any, ...]]:
    """The rows of psycopg's `cursor.stream` (single-row mode, one statement by the extended protocol)."""
    try:
        yield from stream
    except psycopg.Error as e:
        raise QueryError(postgres_message(e)) from None


def postgres_message(error: Exception) -> str:
    """Refusals by the READ ONLY transaction or the prepared statement, in the words used for SQLite."""
    state, text = getattr(error, "sqlstate", None), first_line(error)
    if state == "25006":  # read_only_sql_transaction
        match = re.search(r"cannot execute ([A-Z]+(?: [A-Z]+)*)", text)
        return f"refused: the query writes ({match.group(1) if match else text})"
    if "multiple commands" in text:
        return "refused: one statement at a time"
    return f"SQL error: {text}"


@contextmanager
def reading(db: str, doing: str) -> Iterator[Connection]:
    """A connection to `db` as it is (read-only: never migrated nor created, nothing changed); failures
    as QueryErrors saying `cannot <doing>: <reason>`."""
    try:
        engine = make_engine(db, readonly=True)
    except StoreError as e:
        raise QueryError(str(e)) from None
    try:
        with engine.connect() as conn:
            yield conn
    except SQLAlchemyError as e:
        raise QueryError(f"cannot {doing}: {first_line(e)}") from None
    except StoreError as e:
        raise QueryError(str(e)) from None
    finally:
        engine.dispose()


CRAWL_COLUMNS = ["id", "status", "started_at", "finished_at", "active_s", "pages", "errors", "seeds"]


def list_crawls(db: str) -> list[list[Any]]:
    """One row of CRAWL_COLUMNS per crawl, oldest first; `active_s` is the time its runs ran (each from its
    start to its end, or to its last heartbeat if it died), so the time a crawl spent stopped does not count."""
    with reading(db, f"read the crawls from {db}") as conn:
        tallies = {crawl_id: (n, errors) for crawl_id, n, errors in conn.execute(
            select(pages.c.crawl_id, func.count(), func.count(pages.c.error)).group_by(pages.c.crawl_id))}
        ended = func.coalesce(runs.c.ended_at, runs.c.alive_at, type_=UtcDateTime)
        active = active_seconds(conn.execute(select(runs.c.crawl_id, runs.c.started_at, ended)))
        return [
            [c.id, c.status, c.started_at, c.finished_at, round(active.get(c.id, 0.0), 3),
             *tallies.get(c.id, (0, 0)), json.loads(c.seeds)]
            for c in conn.execute(select(crawls).order_by(crawls.c.id))
        ]


def active_seconds(spans: Iterable[Sequence[Any]]) -> dict[int, float]:
    """{crawl_id: seconds} during which at least one of its (crawl_id, started, ended) spans ran: runs that
    overlap (workers of one crawl) count once, the time between runs not at all."""
    total: dict[int, float] = {}
    reach: dict[int, Any] = {}  # crawl_id -> the end of the time counted so far
    for crawl_id, started, ended in sorted(spans, key=lambda span: (span[0], span[1])):
        counted_to = max(reach.get(crawl_id, started), started)
        total[crawl_id] = total.get(crawl_id, 0.0) + max((ended - counted_to).total_seconds(), 0.0)
        reach[crawl_id] = max(counted_to, ended)
    return total


def export_pages(db: str, crawl_id: int | None, fmt: str, fields: Sequence[str], out: TextIO,
                 progress: Callable[[int], Callable[[Iterator[Any]], Iterator[Any]]] | None = None) -> int:
    """Write the pages of the crawl (default the latest) to `out` in `fmt`, streamed; how many.
    `progress(total)` may wrap the rows (a progress bar)."""
    with reading(db, f"read pages from {db}") as conn:
        crawl = find_crawl(conn, crawl_id)
        rows = page_rows(conn, crawl.id, fields)
        if progress is not None:
            total = conn.execute(select(func.count()).select_from(pages).where(pages.c.crawl_id == crawl.id))
            rows = progress(total.scalar_one())(rows)
        return WRITERS[fmt](out, fields, rows)


def find_crawl(conn: Connection, crawl_id: int | None) -> Row[Any]:
    query = select(crawls)
    query = (
        query.order_by(crawls.c.id.desc()).limit(1)
        if crawl_id is None
        else query.where(crawls.c.id == crawl_id)
    )
    row = conn.execute(query).first()
    if row is None:
        raise QueryError(
            "no crawl in this database" if crawl_id is None else f"no crawl {crawl_id} in this database"
        )
    return row


def format_rows(columns: Sequence[str], rows: Iterable[Sequence[Any]], fmt: str) -> str:
    """Rows as `table` (aligned, long cells cut), `csv` (with a header), `json` (an array of objects) or
    `jsonl` (an object a line), as one string; `write_rows` writes them as they come."""
    out = io.StringIO()
    write_rows(out, columns, rows, fmt)
    return out.getvalue().rstrip("\n")


def write_rows(out: TextIO, columns: Sequence[str], rows: Iterable[Sequence[Any]], fmt: str) -> int:
    """Write rows to `out` in `fmt`, one at a time (table: the first MAX_TABLE_ROWS); how many were read."""
    if fmt == "table":
        shown = list(itertools.islice(rows, MAX_TABLE_ROWS + 1))
        out.write(format_table(columns, shown[:MAX_TABLE_ROWS], more=len(shown) > MAX_TABLE_ROWS) + "\n")
        return len(shown)
    if fmt not in WRITERS:
        raise QueryError(f"unknown format {fmt!r}: use table, csv, json or jsonl")
    return WRITERS[fmt](out, columns, rows)


def cell(value: Any) -> str:
    if value is None:
        return ""
    text = safe(" ".join(str(plain(value)).split()) if isinstance(value, str) else str(plain(value)))
    return text if len(text) <= MAX_CELL else text[: MAX_CELL - 1] + "…"


def format_table(columns: Sequence[str], rows: Sequence[Sequence[Any]], more: bool = False) -> str:
    """Aligned columns (numbers to the right), a rule under the header, and a row count (with `more`:
    that the rows shown are the first of more)."""
    cells = [[cell(v) for v in row] for row in rows]
    widths = [max([len(name), *(len(r[i]) for r in cells)]) for i, name in enumerate(columns)]
    numeric = [
        all(isinstance(r[i], int | float | Decimal) or r[i] is None for r in rows)
        for i in range(len(columns))
    ]

    def line(values: Sequence[str]) -> str:
        parts = [v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric)]
        return "  ".join(parts).rstrip()

    body = [line(columns), line(["-" * w for w in widths]), *(line(r) for r in cells)]
    count = f"({len(rows)} row{'' if len(rows) == 1 else 's'})"
    if more:
        count = f"(the first {len(rows)} rows; use --format csv, json or jsonl for all of them)"
    return "\n".join([*body, count])
