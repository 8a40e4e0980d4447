"""Schema: the tables a crawl writes, as SQLAlchemy Core (the models alembic's migrations must match).

Users query these tables with SQL (`crawl sql`), so names are part of the interface:

- crawls:   one row per crawl (status running | finished | interrupted; seeds and settings as JSON text)
- frontier: every URL a crawl has seen, with its state queued | claimed | done (the durable queue)
- pages:    one row per fetched URL (status NULL when no response arrived; error NULL on success)
- links:    the outgoing links of each HTML page (nofollow ones too, flagged: they are not followed)
- pages_fts (SQLite, an FTS5 table over pages' title and text, kept by triggers) and ix_pages_search
  (PostgreSQL, a GIN index on their tsvector): the search index, owned by migration 0004, outside this
  metadata (migrations/env.py keeps it out of autogenerate's view); see crawler.store.search

Timestamps are UTC. PostgreSQL stores them as `timestamptz`; SQLite as ISO-8601 text
`YYYY-MM-DD HH:MM:SS.ffffff` (UTC, no offset), which sorts, reads, and works with SQLite's date functions.

Also here: the ways rows go in fast on both backends (insert_ignore, bulk_insert, bulk_insert_new), and
one_of, an IN list that does not make a new SQL text per length.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from operator import itemgetter
from typing import Any, TypeVar

from sqlalchemy import (
    Boolean,
    Column,
    ColumnElement,
    Connection,
    CursorResult,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
    false,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql.dml import Insert

from crawler.frontier import CLAIMED, DONE, QUEUED  # noqa: F401 (frontier.state, re-exported)

T = TypeVar("T")
RUNNING, FINISHED, INTERRUPTED = "running", "finished", "interrupted"  # crawls.status

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


class UtcDateTime(TypeDecorator[dt.datetime]):
    """A timezone-aware UTC datetime on both backends (SQLite hands back naive values: they are UTC)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is not None and value.tzinfo is not None:
            value = value.astimezone(dt.UTC)
        return value

    def process_result_value(self, value: Any, dialect: Dialect) -> dt.datetime | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        return value


crawls = Table(
    "crawls",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("started_at", UtcDateTime, nullable=False),
    Column("finished_at", UtcDateTime),
    Column("status", Text, nullable=False),
    Column("seeds", Text, nullable=False),  # JSON list of URLs
    Column("settings", Text, nullable=False),  # JSON of crawler.settings.Settings
    Column("recrawl_of", Integer),  # the crawl a `crawl recrawl` revalidates (NULL: a fresh crawl)
)

frontier = Table(
    "frontier",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("crawl_id", Integer, ForeignKey("crawls.id"), nullable=False),
    Column("url", Text, nullable=False),
    Column("host", Text, nullable=False),
    Column("depth", Integer, nullable=False),
    Column("state", Text, nullable=False),
    UniqueConstraint("crawl_id", "url"),
    Index(None, "crawl_id", "state", "id"),
    Index(None, "crawl_id", "state", "host", "id"),  # a claim's walk over the queued hosts
)

runs = Table(  # one row per process working on a crawl: its heartbeat, for resume and `crawl stats`
    "runs",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("crawl_id", Integer, ForeignKey("crawls.id"), nullable=False),
    Column("host", Text, nullable=False),  # the machine's name
    Column("pid", Integer, nullable=False),
    Column("started_at", UtcDateTime, nullable=False),
    Column("alive_at", UtcDateTime, nullable=False),  # last heartbeat
    Column("ended_at", UtcDateTime),  # NULL while running, or when the process died
    Column("pages", Integer, nullable=False, server_default="0"),  # page rows this process stored
    Index(None, "crawl_id"),
)

# Small columns first and `text` last: SQLite then reads status/length/... without touching overflow pages.
pages = Table(
    "pages",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("crawl_id", Integer, ForeignKey("crawls.id"), nullable=False),
    Column("url", Text, nullable=False),
    Column("final_url", Text, nullable=False),
    Column("depth", Integer, nullable=False),
    Column("status", Integer),
    Column("error", Text),
    Column("content_type", Text),
    Column("kind", Text),  # what extraction read: html | sitemap | sitemap index (NULL: nothing)
    Column("length", Integer),
    Column("fetched_at", UtcDateTime),
    Column("elapsed_ms", Integer),
    Column("content_hash", Text),
    Column("encoding", Text),
    Column("etag", Text),  # the response's ETag, sent back as If-None-Match by a recrawl
    Column("last_modified", Text),  # its Last-Modified, sent back as If-Modified-Since
    Column("unchanged", Boolean, nullable=False, server_default=false()),  # a 304: fields carried forward
    Column("title", Text),
    Column("description", Text),
    Column("text", Text),
    # (added by migration 0005, so after `text` on SQLite)
    Column("canonical", Text),  # the page's <link rel="canonical">
    Column("noindex", Boolean, nullable=False, server_default=false()),  # its robots meta says noindex
    UniqueConstraint("crawl_id", "url"),
)

links = Table(
    "links",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("page_id", Integer, ForeignKey("pages.id"), nullable=False),
    Column("url", Text, nullable=False),
    Column("anchor", Text),
    Column("lastmod", Text),  # a sitemap's <lastmod> for the URL (NULL for HTML links)
    Column("nofollow", Boolean, nullable=False, server_default=false()),  # rel=nofollow, or the page's meta
    Index(None, "page_id"),
    Index(None, "url"),
)


def insert_ignore(dialect_name: str, table: Table) -> Insert:
    """INSERT ... ON CONFLICT DO NOTHING for the dialect at hand (SQLite or PostgreSQL)."""
    if dialect_name == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing()
    return sqlite.insert(table).on_conflict_do_nothing()


def bulk_insert(conn: Connection, table: Table, rows: list[dict[str, Any]], *, ignore: bool = False) -> int:
    """Insert (or, with ignore, insert-or-ignore) many plain rows fast; how many were inserted.

    Skips SQLAlchemy's per-row parameter processing, which is most of the cost of 4000 links, so the
    values must need no conversion (str, int, bool, None) but in columns of our own types (UtcDateTime),
    which go through their bind processor. SQLite: the sqlite3 executemany C loop, whose rowcount sums
    the rows changed. PostgreSQL: one INSERT ... SELECT FROM unnest(arrays), twice as fast as psycopg's
    executemany here. Either way one SQL text whatever the number of rows (see one_of).
    """
    if not rows:
        return 0
    rows = converted(conn.dialect, table, rows)
    if conn.dialect.name == "postgresql":
        return unnest_insert(conn, table, rows, ignore).rowcount
    return sqlite_insert(conn, table, rows, ignore).rowcount


def bulk_insert_new(
    conn: Connection, table: Table, rows: list[dict[str, Any]], *returned: str
) -> list[tuple[Any, ...]]:
    """Insert-or-ignore many plain rows fast (as bulk_insert); the `returned` columns of those inserted.

    PostgreSQL: RETURNING. SQLite, whose executemany returns no rows: the rows whose id is above the
    table's largest before the insert (SQLite gives a new row the largest rowid plus one). That needs the
    table's write lock held from that read on: run_write's BEGIN IMMEDIATE holds it.
    """
    if not rows:
        return []
    rows = converted(conn.dialect, table, rows)
    if conn.dialect.name == "postgresql":
        return [tuple(row) for row in unnest_insert(conn, table, rows, True, returned)]
    before = conn.exec_driver_sql(f"SELECT coalesce(max(id), 0) FROM {table.name}").scalar_one()
    sqlite_insert(conn, table, rows, True)
    new = conn.exec_driver_sql(f"SELECT {', '.join(returned)} FROM {table.name} WHERE id > ?", (before,))
    return [tuple(row) for row in new]


def converted(dialect: Dialect, table: Table, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows with their UtcDateTime (TypeDecorator) values bound as the dialect stores them."""
    processors = {key: process for key in rows[0] if isinstance(table.c[key].type, TypeDecorator)
                  and (process := table.c[key].type.dialect_impl(dialect).bind_processor(dialect)) is not None}
    if not processors:
        return rows
    return [{**row, **{key: process(row[key]) for key, process in processors.items()}} for row in rows]


def sqlite_insert(conn: Connection, table: Table, rows: list[dict[str, Any]], ignore: bool) -> CursorResult[Any]:
    statement = insert_ignore(conn.dialect.name, table) if ignore else table.insert()
    compiled = statement.compile(dialect=conn.dialect, column_keys=list(rows[0]))
    keys = compiled.positiontup or []
    params = (
        [tuple(row[key] for key in keys) for row in rows]
        if len(keys) < 2
        else list(map(itemgetter(*keys), rows))
    )
    return conn.exec_driver_sql(str(compiled), params)


def unnest_insert(
    conn: Connection, table: Table, rows: list[dict[str, Any]], ignore: bool, returned: tuple[str, ...] = ()
) -> CursorResult[Any]:
    keys = list(rows[0])
    arrays = ", ".join(f"%({key})s::{table.c[key].type.compile(dialect=conn.dialect)}[]" for key in keys)
    sql = f"INSERT INTO {table.name} ({', '.join(keys)}) SELECT * FROM unnest({arrays})"
    sql += " ON CONFLICT DO NOTHING" if ignore else ""
    sql += f" RETURNING {', '.join(returned)}" if returned else ""
    return conn.exec_driver_sql(sql, {key: [row[key] for row in rows] for key in keys})


def one_of(column: ColumnElement[Any], values: Sequence[Any]) -> ColumnElement[bool]:
    """`column IN (values)`, the list padded (see padded)."""
    return column.in_(padded(values))


def padded(values: Sequence[T]) -> list[T]:
    """The values for an IN list, padded to a power of two by repeating the last one.

    SQLite keeps a prepared statement per SQL text (128 per connection), and an IN list renders one
    text per length: a crawl's batches of every length from 1 to 100 kept ~30 MB of statements in the
    crawl process by 20k pages. Padded, a crawl uses eight.
    """
    values = list(values)
    if values:
        values += values[-1:] * ((1 << (len(values) - 1).bit_length()) - len(values))
    return values
