"""Search at scale: query latency over N pages, and what keeping the index current costs the writes.

Fills a fresh SQLite database (or, with --db, a PostgreSQL one) with N page rows of generated text
(crawler.testsite's word list, ~300 words each) through the crawl's own write path (save_pages), once
with the search index (FTS5 triggers / the GIN index) and once without it, and reports rows/s both ways;
then times each query kind (word, two words, phrase, prefix, -word) as the median of 20 runs. Last, the
cost to a real crawl: pages/s of `crawl` over a local `crawler.testsite --html realistic` site of
--crawl-pages pages into SQLite with the FTS5 triggers and without them, alternated --repeat times.

    python bench/search.py                      # 100k pages, SQLite
    python bench/search.py --pages 20000 --db postgresql+psycopg://postgres@127.0.0.1/test

Not a test: nothing here is asserted.
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy import text

from crawler.records import Job, Outcome, Page, Response
from crawler.store.search import search
from crawler.store.sql import open_store, save_pages
from crawler.testsite import paragraph

BATCH = 500
QUERIES = ["greenlet", "sqlite frontier", '"python crawler"', "migr*", "robots -charset"]
NO_INDEX = {  # what dropping the index takes, per backend (the migration puts it back on the next open)
    "sqlite": ["DROP TRIGGER pages_fts_insert", "DROP TRIGGER pages_fts_update", "DROP TRIGGER pages_fts_delete"],
    "postgresql": ["DROP INDEX ix_pages_search"],
}


def outcome(i: int) -> Outcome:
    page = Page(title=f"Page {i} {paragraph(i, 3)}", text=" ".join(paragraph(i + k, 60) for k in range(5)),
                content_hash=f"{i:040x}")
    url = f"http://bench.example/page/{i}"
    return Outcome(Job(i, url, 1), Response(url, url, status=200, headers={"content-type": "text/html"}), page)


def fill(db: str, pages: int, indexed: bool) -> float:
    """Rows/s of save_pages into a new crawl of `db`, with or without the search index."""
    with open_store(db) as store:
        if not indexed:
            with store.engine.begin() as conn:
                for statement in NO_INDEX[conn.dialect.name]:
                    conn.execute(text(statement))
        crawl_id = store.start_crawl(["http://bench.example/"], "{}")
        began = time.monotonic()
        for start in range(0, pages, BATCH):
            batch = [outcome(i) for i in range(start, min(start + BATCH, pages))]
            store.write(lambda conn, batch=batch: save_pages(conn, crawl_id, batch))
        return pages / (time.monotonic() - began)


def latency(db: str, query: str) -> tuple[float, int]:
    times, found = [], 0
    for _ in range(20):
        began = time.monotonic()
        found = len(search(db, query, None, 20)[1])
        times.append(time.monotonic() - began)
    return statistics.median(times) * 1000, found


def crawl_rate(url: str, pages: int, db: str, indexed: bool) -> float:
    """Pages/s of the real CLI crawling `url` into a new SQLite file, with or without the FTS5 triggers."""
    open_store(db).close()
    if not indexed:
        with sqlite3.connect(db) as conn:
            for statement in NO_INDEX["sqlite"]:
                conn.execute(statement)
    began = time.monotonic()
    subprocess.run([sys.executable, "-m", "crawler", url, "--db", db, "--quiet", "--parse-workers", "2",
                    "--concurrency", "32", "--per-host", "32"], check=True, timeout=1800)
    return pages / (time.monotonic() - began)


def crawl_cost(pages: int, repeat: int, tmp: str) -> None:
    site = subprocess.Popen([sys.executable, "-m", "crawler.testsite", "--pages", str(pages), "--html",
                             "realistic"], stdout=subprocess.PIPE, text=True)
    try:
        assert site.stdout is not None
        url = site.stdout.readline().strip()
        rates: dict[bool, list[float]] = {True: [], False: []}
        for run in range(repeat):
            for indexed in (True, False):
                rates[indexed].append(crawl_rate(url, pages, str(Path(tmp) / f"c{run}{indexed}.db"), indexed))
    finally:
        site.terminate()
        site.wait(10)
    for indexed, values in rates.items():
        shown = ", ".join(f"{rate:.0f}" for rate in values)
        print(f"crawl of {pages} pages {'with' if indexed else 'without'} the index: {shown} pages/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=100_000)
    parser.add_argument("--db", help="a PostgreSQL URL (an empty database: tables are created, then kept)")
    parser.add_argument("--crawl-pages", type=int, default=3000, help="0: skip the crawl comparison")
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        plain = fill(args.db or str(Path(tmp) / "plain.db"), args.pages, indexed=False)
        if args.db:  # the same database: put the index back by hand, then fill a second crawl
            with open_store(args.db) as store, store.engine.begin() as conn:
                conn.execute(text("CREATE INDEX ix_pages_search ON pages USING gin (to_tsvector('english', "
                                  "coalesce(title, '') || ' ' || coalesce(text, '')))"))
        db = args.db or str(Path(tmp) / "indexed.db")
        indexed = fill(db, args.pages, indexed=True)
        print(f"{args.pages} pages: writes {plain:,.0f} rows/s without the index, {indexed:,.0f} with "
              f"({100 * (1 - indexed / plain):.0f}% slower)")
        for query in QUERIES:
            ms, found = latency(db, query)
            print(f"  {query!r:22} {ms:7.1f} ms median  ({found} results shown)")
        if args.crawl_pages:
            crawl_cost(args.crawl_pages, args.repeat, tmp)


if __name__ == "__main__":
    main()
