"""Export: rows out of the database as JSON Lines, CSV (RFC 4180) or a JSON array, written one row at a
time as they stream in (`crawl export`, `crawl sql`), so memory stays flat whatever the crawl's size.

A writer takes an output, the column names and an iterator of rows, and returns how many rows it wrote.
`page_rows` streams one crawl's pages (with their links, for JSONL) in page id order from one connection:
two ordered cursors, pages and links, merged (`with_links`), never a query per page nor a list of all.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from decimal import Decimal
from typing import Any, TextIO

from sqlalchemy import Connection, select

from crawler.store.schema import links, pages

Row = Sequence[Any]
Writer = Callable[[TextIO, Sequence[str], Iterable[Row]], int]
PAGE_FIELDS = tuple(c.name for c in pages.columns)
LINKS = "links"  # the field that is not a column: the page's links, a list of {"url", "anchor"}
YIELD_PER = 500  # rows fetched from the database at a time (a server-side cursor on PostgreSQL)


class FieldError(ValueError):
    """--fields named something that is not a field."""


def plain(value: Any) -> Any:
    """A JSON/CSV-friendly form of one database value."""
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value


def json_plain(value: Any) -> Any:
    """plain(value) for JSON, which has no Infinity or NaN: those become null (as JavaScript writes them)."""
    value = plain(value)
    return None if isinstance(value, float) and not math.isfinite(value) else value


def json_object(keys: Sequence[str], row: Row) -> str:
    return json.dumps(dict(zip(keys, map(json_plain, row))), ensure_ascii=False, allow_nan=False)


def unique_names(columns: Sequence[str]) -> list[str]:
    """Column names made unique for JSON keys: a repeated `a` becomes `a_2`, `a_3`, ..."""
    seen: dict[str, int] = {}
    names = []
    for name in columns:
        seen[name] = seen.get(name, 0) + 1
        names.append(name if seen[name] == 1 else f"{name}_{seen[name]}")
    return names


def write_jsonl(out: TextIO, columns: Sequence[str], rows: Iterable[Row]) -> int:
    """One JSON object per line."""
    keys, n = unique_names(columns), 0
    for n, row in enumerate(rows, 1):
        out.write(json_object(keys, row) + "\n")
    return n


def write_json(out: TextIO, columns: Sequence[str], rows: Iterable[Row]) -> int:
    """A JSON array of objects, one per line, opened before the first row and closed after the last."""
    keys, n = unique_names(columns), 0
    out.write("[")
    for n, row in enumerate(rows, 1):
        out.write(("\n" if n == 1 else ",\n") + json_object(keys, row))
    out.write("\n]\n" if n else "]\n")
    return n


def csv_cell(value: Any) -> Any:
    return json.dumps(value, ensure_ascii=False) if isinstance(value, list | dict) else plain(value)


def write_csv(out: TextIO, columns: Sequence[str], rows: Iterable[Row]) -> int:
    """A header row, then one row per record (RFC 4180 quoting, CRLF line ends); lists as JSON text."""
    writer, n = csv.writer(out, lineterminator="\r\n"), 0
    writer.writerow(columns)
    for n, row in enumerate(rows, 1):
        writer.writerow([csv_cell(v) for v in row])
    return n


WRITERS: dict[str, Writer] = {"jsonl": write_jsonl, "csv": write_csv, "json": write_json}


def page_fields(fields: str | None, fmt: str) -> list[str]:
    """The fields of `--fields a,b,c` (checked), or the default: every column, and `links` in JSONL/JSON."""
    if not fields:
        return [*PAGE_FIELDS, *([LINKS] if fmt != "csv" else [])]
    chosen = [name.strip() for name in fields.split(",") if name.strip()]
    unknown = [name for name in chosen if name not in (*PAGE_FIELDS, LINKS)]
    if unknown or not chosen:
        raise FieldError(f"unknown field {unknown[0]!r}: choose from {', '.join((*PAGE_FIELDS, LINKS))}"
                         if unknown else "--fields names no field")
    return chosen


def with_links(rows: Iterable[Row], page_links: Iterable[Row], at: int) -> Iterator[list[Any]]:
    """Each page row (ordered by id) with a list of {"url", "anchor"} put at index `at` (its page id
    there until then), from `page_links`: (page_id, url, anchor) rows ordered by page_id."""
    pending = iter(page_links)
    link = next(pending, None)
    for row in rows:
        record, page_id, found = list(row), row[at], []
        while link is not None and link[0] < page_id:
            link = next(pending, None)
        while link is not None and link[0] == page_id:
            found.append({"url": link[1], "anchor": link[2]})
            link = next(pending, None)
        record[at] = found
        yield record


def streamed(conn: Connection, query: Any) -> Iterator[Row]:
    return iter(conn.execution_options(stream_results=True, yield_per=YIELD_PER).execute(query))


def page_rows(conn: Connection, crawl_id: int, fields: Sequence[str]) -> Iterator[Row]:
    """The crawl's pages as rows of `fields`, in id order, streamed."""
    columns = [pages.c.id if name == LINKS else pages.c[name] for name in fields]
    rows = streamed(conn, select(*columns).where(pages.c.crawl_id == crawl_id).order_by(pages.c.id))
    if LINKS not in fields:
        return rows
    of_crawl = select(pages.c.id).where(pages.c.crawl_id == crawl_id)
    query = (select(links.c.page_id, links.c.url, links.c.anchor)
             .where(links.c.page_id.in_(of_crawl)).order_by(links.c.page_id, links.c.id))
    return with_links(rows, streamed(conn, query), list(fields).index(LINKS))
