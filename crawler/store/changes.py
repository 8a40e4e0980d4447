"""Changes: what differs between two crawls of a site, one row per URL of either (`crawl changes`).

The rule, in SQL (CHANGES, also in the README, to run with `crawl sql` after filling in :new and :old):
- new:       the URL has a row in the new crawl only
- gone:      in the old crawl only, or now an error / 404 / 410 where it was not
- moved:     both crawls' rows, with a different final_url (where the redirect led)
- unchanged: a 304 (pages.unchanged), or the same content_hash (for rows without a body: the same status)
- changed:   anything else (the content differs)
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from sqlalchemy import Connection, text

from crawler.store.query import QueryError, find_crawl, reading
from crawler.store.schema import crawls

KINDS = ("new", "gone", "changed", "moved", "unchanged")
COLUMNS = ["url", "change"]
FAILED = "({0}.error IS NOT NULL OR {0}.status IN (404, 410))"
CHANGES = text(f"""
SELECT n.url, CASE
    WHEN o.id IS NULL THEN 'new'
    WHEN {FAILED.format("n")} AND NOT {FAILED.format("o")} THEN 'gone'
    WHEN n.final_url <> o.final_url THEN 'moved'
    WHEN n.unchanged OR (coalesce(n.content_hash, '') = coalesce(o.content_hash, '')
        AND (n.content_hash IS NOT NULL OR coalesce(n.status, -1) = coalesce(o.status, -1))) THEN 'unchanged'
    ELSE 'changed' END AS change
FROM pages AS n LEFT JOIN pages AS o ON o.crawl_id = :old AND o.url = n.url
WHERE n.crawl_id = :new
UNION ALL
SELECT o.url, 'gone' FROM pages AS o
WHERE o.crawl_id = :old AND NOT EXISTS (SELECT 1 FROM pages AS n WHERE n.crawl_id = :new AND n.url = o.url)
ORDER BY url
""")


def changes(db: str, new: int | None = None, old: int | None = None) -> tuple[int, int, list[Any]]:
    """(new, old, rows of (url, change)): crawl `new` (default: the latest) against `old` (default: the
    latest crawl before it with the same seeds)."""
    with reading(db, f"compare crawls in {db}") as conn:
        newer = find_crawl(conn, new)
        older = find_crawl(conn, old).id if old is not None else earlier(conn, newer.id, newer.seeds)
        return newer.id, older, [tuple(row) for row in conn.execute(CHANGES, {"new": newer.id, "old": older})]


def earlier(conn: Connection, crawl_id: int, seeds: str) -> int:
    c = crawls.c
    query = c.id.table.select().with_only_columns(c.id).where(c.id < crawl_id, c.seeds == seeds)
    found = conn.execute(query.order_by(c.id.desc()).limit(1)).scalar()
    if found is None:
        raise QueryError(f"no earlier crawl with the seeds of crawl {crawl_id}: give --since ID")
    return int(found)


def tally(rows: list[Any]) -> str:
    """The count per kind, for the end of the table format."""
    counts = Counter(change for _, change in rows)
    return ", ".join(f"{kind} {counts[kind]}" for kind in KINDS)
