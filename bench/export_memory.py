"""Peak memory of `crawl export` against the size of the crawl: it must stay flat (rows stream).

For each size N, writes a crawl of N pages (~2 KB of text and 10 links each) straight into a temporary
SQLite database (migrated by the store, filled with sqlite3), then runs the real CLI
`python -m crawler export --db DB --format F -o /dev/null` and reads its peak RSS from the kernel
(`os.wait4`'s ru_maxrss). Prints one row per size and format.

    python bench/export_memory.py                       # 1000 and 100000 pages, jsonl and csv
    python bench/export_memory.py --pages 1000 10000 --formats jsonl

Not a test: nothing here is timed or asserted; the numbers go in the README.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from crawler.store.sql import open_store

ROOT = Path(__file__).resolve().parent.parent
LINKS_PER_PAGE = 10
TEXT = "lorem ipsum dolor sit amet " * 80


def fill(db: Path, pages: int) -> None:
    """One finished crawl of `pages` pages with their links."""
    with open_store(str(db)) as store:
        crawl_id = store.start_crawl(["http://bench.test/"], "{}")
        store.finish_crawl(crawl_id, "finished")
    with sqlite3.connect(db) as conn:
        conn.executemany(
            "INSERT INTO pages (id, crawl_id, url, final_url, depth, status, content_type, length, "
            "fetched_at, elapsed_ms, content_hash, encoding, title, description, text) "
            "VALUES (?, ?, ?, ?, 1, 200, 'text/html', 3000, '2026-01-01 00:00:00.000000', 5, ?, 'utf-8', ?, ?, ?)",
            ((i, crawl_id, f"http://bench.test/{i}", f"http://bench.test/{i}", f"{i:040x}", f"Page {i}",
              f"About page {i}", f"{TEXT} {i}") for i in range(1, pages + 1)))
        conn.executemany(
            "INSERT INTO links (page_id, url, anchor) VALUES (?, ?, ?)",
            ((i, f"http://bench.test/{(i * 7 + j) % pages}", f"link {j}")
             for i in range(1, pages + 1) for j in range(LINKS_PER_PAGE)))


def peak_rss_of_export(db: Path, fmt: str) -> tuple[int, float]:
    """(peak RSS in bytes, seconds) of one `crawl export` to /dev/null."""
    began = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "crawler", "export", "--db", str(db), "--format", fmt,
                             "-o", os.devnull], cwd=ROOT)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"export failed with {proc.returncode}")
    return usage.ru_maxrss * 1024, time.monotonic() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, nargs="+", default=[1000, 100_000])
    parser.add_argument("--formats", nargs="+", default=["jsonl", "csv"])
    args = parser.parse_args()
    print("| pages | link rows | format | peak RSS | seconds |\n|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for pages in args.pages:
            db = Path(tmp) / f"export-{pages}.db"
            fill(db, pages)
            for fmt in args.formats:
                peak, seconds = peak_rss_of_export(db, fmt)
                print(f"| {pages:,} | {pages * LINKS_PER_PAGE:,} | {fmt} | {peak / 2**20:.1f} MiB | {seconds:.1f} |")


if __name__ == "__main__":
    main()
