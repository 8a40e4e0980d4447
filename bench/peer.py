"""What the peer contenders of bench/compare.py (Scrapy, Crawlee) share: their seeds and the SQLite they write.

Seeds: a URL, or a file of URLs one a line (the broad site's 1000 seeds), as `crawl` takes them. The
store: pages (url, status, title, description, text) and links (page_id, url, anchor) in one SQLite file
in WAL mode, written in batches: one executemany per table and one transaction per BATCH pages, the way a
good pipeline writes. bench/compare.py checks every run with the same query over this schema and ours.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

BATCH = 500
SCHEMA = """
PRAGMA journal_mode=WAL;
PRAGMA synchronous=NORMAL;
CREATE TABLE IF NOT EXISTS pages (id INTEGER PRIMARY KEY, url TEXT NOT NULL UNIQUE, status INTEGER,
    title TEXT, description TEXT, text TEXT);
CREATE TABLE IF NOT EXISTS links (id INTEGER PRIMARY KEY, page_id INTEGER NOT NULL REFERENCES pages(id),
    url TEXT NOT NULL, anchor TEXT);
CREATE INDEX IF NOT EXISTS ix_links_page_id ON links (page_id);
CREATE INDEX IF NOT EXISTS ix_links_url ON links (url);
"""


def read_seeds(arg: str) -> list[str]:
    """`arg` itself if it is a URL, else the non-blank lines of the file it names."""
    if "://" in arg:
        return [arg]
    return [line.strip() for line in Path(arg).read_text().splitlines() if line.strip()]


def hosts_of(seeds: list[str]) -> set[str]:
    """The seeds' hosts: the crawl's scope (same-host links only, as `crawl --scope host`)."""
    return {urlsplit(url).hostname or "" for url in seeds}


class PageWriter:
    """Pages and their links into SQLite, BATCH pages per transaction."""

    def __init__(self, db: str) -> None:
        self.conn = sqlite3.connect(db, isolation_level=None)
        self.conn.executescript(SCHEMA)
        self.pages: list[tuple[Any, ...]] = []
        self.links: list[tuple[Any, ...]] = []
        self.next_id = 1

    def add(self, item: dict[str, Any]) -> None:
        """One page: url, status, title, description, text and links, a list of (url, anchor)."""
        page_id, self.next_id = self.next_id, self.next_id + 1
        self.pages.append((page_id, item["url"], item["status"], item["title"], item["description"],
                           item["text"]))
        self.links.extend((page_id, url, anchor) for url, anchor in item["links"])
        if len(self.pages) >= BATCH:
            self.flush()

    def flush(self) -> None:
        with self.conn:
            self.conn.execute("BEGIN")
            self.conn.executemany("INSERT OR IGNORE INTO pages VALUES (?, ?, ?, ?, ?, ?)", self.pages)
            self.conn.executemany("INSERT INTO links (page_id, url, anchor) VALUES (?, ?, ?)", self.links)
        self.pages, self.links = [], []

    def close(self) -> None:
        self.flush()
        self.conn.close()
