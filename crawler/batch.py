"""One write batch of the crawl loop, inside its transaction: page rows, their links, frontier transitions.

Store.save runs `save_batch` in one transaction; SqlFrontier.add_many runs `queue`. Every function takes
an open Connection and plain records, and writes with SQLAlchemy Core (bulk inserts where rows are many).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

from sqlalchemy import Connection, bindparam, update

from crawler.records import Outcome
from crawler.schema import DONE, QUEUED, bulk_insert, frontier, insert_ignore, links, pages
from crawler.urls import host_of


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
        "content_hash": (page.content_hash or None) if page else None,
        "encoding": page.encoding if page else None,
        "title": page.title if page else None,
        "description": page.description if page else None,
        "text": page.text if page else None,
    }


def save_batch(
    conn: Connection,
    crawl_id: int,
    outcomes: list[Outcome],
    discovered: list[tuple[str, str, int]],
    shallower: list[tuple[str, int]],
) -> None:
    """The body of Store.save, inside its transaction."""
    unique: dict[str, Outcome] = {}
    for outcome in outcomes:  # a URL twice in one batch: the first outcome wins
        unique.setdefault(outcome.job.url, outcome)
    page_ids = insert_pages(conn, crawl_id, list(unique.values()))
    insert_links(conn, list(unique.values()), page_ids)
    job_ids = [o.job.id for o in outcomes]
    if job_ids:
        conn.execute(update(frontier).where(frontier.c.id.in_(job_ids)).values(state=DONE))
    mark_redirects_done(conn, crawl_id, list(unique.values()))
    queue(conn, crawl_id, discovered)
    lower_depths(conn, crawl_id, shallower)


def insert_pages(conn: Connection, crawl_id: int, outcomes: list[Outcome]) -> dict[str, int]:
    """Insert-or-ignore the pages; {url: id} of those actually inserted (RETURNING skips the ignored)."""
    if not outcomes:
        return {}
    rows = [page_row(crawl_id, o) for o in outcomes]
    query = insert_ignore(conn.dialect.name, pages).returning(pages.c.id, pages.c.url)
    return {url: id_ for id_, url in conn.execute(query, rows)}


def insert_links(conn: Connection, outcomes: list[Outcome], page_ids: dict[str, int]) -> None:
    rows = [
        {"page_id": page_ids[o.job.url], "url": link.url, "anchor": link.anchor}
        for o in outcomes
        if o.page is not None and o.job.url in page_ids
        for link in o.page.links
    ]
    if rows:
        bulk_insert(conn, links, rows)


def mark_redirects_done(conn: Connection, crawl_id: int, outcomes: list[Outcome]) -> None:
    """A successful redirect's target is done: insert it as done, or flip it to done if known."""
    targets = {o.response.followed_to: o.job.depth for o in outcomes if o.response.followed_to}
    if not targets:
        return
    rows = [
        {"crawl_id": crawl_id, "url": url, "host": host_of(url), "depth": depth, "state": DONE}
        for url, depth in targets.items()
    ]
    conn.execute(insert_ignore(conn.dialect.name, frontier), rows)
    known = (frontier.c.crawl_id == crawl_id) & frontier.c.url.in_(list(targets)) & (frontier.c.state != DONE)
    conn.execute(update(frontier).where(known).values(state=DONE))


def lower_depths(conn: Connection, crawl_id: int, shallower: list[tuple[str, int]]) -> None:
    """Each (url, depth): the URL's frontier row, while still queued, takes the depth if it is smaller."""
    if not shallower:
        return
    row = frontier.c
    still_deeper = (row.crawl_id == crawl_id) & (row.url == bindparam("u")) & (row.state == QUEUED)
    query = update(frontier).where(still_deeper & (row.depth > bindparam("d"))).values(depth=bindparam("d"))
    conn.execute(query, [{"u": url, "d": depth} for url, depth in shallower])


def queue(conn: Connection, crawl_id: int, entries: Iterable[tuple[str, str, int]]) -> int:
    """Insert-or-ignore (url, host, depth) as queued; how many were new (exact: the driver's rowcount)."""
    unique: dict[str, tuple[str, int]] = {}
    for url, host, depth in entries:
        unique.setdefault(url, (host, depth))
    if not unique:
        return 0
    rows = [
        {"crawl_id": crawl_id, "url": url, "host": host, "depth": depth, "state": QUEUED}
        for url, (host, depth) in unique.items()
    ]
    return bulk_insert(conn, frontier, rows, ignore=True)
