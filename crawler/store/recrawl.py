"""Recrawl in SQL: what an earlier crawl hands a recrawl (its URLs and their validators), and the 304 rows
of the recrawl, which carry the earlier row's fields and links forward so every query on the new crawl
sees the whole site (RFC 9110 13.1: If-None-Match, If-Modified-Since; 15.4.5: 304 Not Modified).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from sqlalchemy import Connection, bindparam, select, text

from crawler.store.schema import padded, pages

# the fields a 304 keeps from the earlier row: the body did not change, so neither did what it gave
CARRIED = ("content_type", "kind", "content_hash", "encoding", "title", "description", "text", "canonical",
           "noindex")
CARRY_FORWARD = text(
    f"UPDATE pages SET unchanged = true, ({', '.join(CARRIED)}, etag, last_modified) = "
    f"(SELECT {', '.join('old.' + c for c in CARRIED)}, coalesce(pages.etag, old.etag), "
    "coalesce(pages.last_modified, old.last_modified) "
    "FROM pages AS old WHERE old.crawl_id = :previous AND old.url = pages.url) "
    "WHERE pages.id IN :ids AND EXISTS (SELECT 1 FROM pages AS old WHERE old.crawl_id = :previous "
    "AND old.url = pages.url AND (old.unchanged OR old.status BETWEEN 200 AND 299))"
).bindparams(bindparam("ids", expanding=True))
CARRY_LINKS = text(
    "INSERT INTO links (page_id, url, anchor, lastmod, nofollow) "
    "SELECT new.id, link.url, link.anchor, link.lastmod, link.nofollow "
    "FROM pages AS new "
    "JOIN pages AS old ON old.crawl_id = :previous AND old.url = new.url "
    "JOIN links AS link ON link.page_id = old.id WHERE new.id IN :ids AND new.unchanged"
).bindparams(bindparam("ids", expanding=True))


def carry_forward(conn: Connection, previous: int, page_ids: Sequence[int]) -> None:
    """Give the 304 rows `page_ids` the fields and links of the same URL's row in crawl `previous`, and
    mark them unchanged. A 304 with no earlier successful row to stand on keeps its empty fields."""
    if page_ids:
        params = {"previous": previous, "ids": padded(page_ids)}
        conn.execute(CARRY_FORWARD, params)
        conn.execute(CARRY_LINKS, params)


def validators(headers: dict[str, str | None]) -> dict[str, str]:
    """The conditional request headers for a row's etag and last_modified (none when it has neither)."""
    names = {"etag": "If-None-Match", "last_modified": "If-Modified-Since"}
    return {names[k]: v for k, v in headers.items() if v}


def earlier_urls(conn: Connection, previous: int) -> Iterator[tuple[str, int, dict[str, str]]]:
    """(url, depth, validators) of every URL crawl `previous` stored."""
    c = pages.c
    query = select(c.url, c.depth, c.etag, c.last_modified).where(c.crawl_id == previous).order_by(c.id)
    for row in conn.execute(query):
        yield row.url, row.depth, validators({"etag": row.etag, "last_modified": row.last_modified})
