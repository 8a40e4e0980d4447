"""`crawl recrawl`: conditional requests, 304 rows carrying the earlier fields, over both engines and both
databases; the savings measured by the test site itself (its /_bytes counter)."""

from __future__ import annotations

import json
import signal
import urllib.request
from pathlib import Path

from conftest import run_cli
from crawl_jobs import Job, count, wait_for
from sqlalchemy import create_engine, text

from crawler.store.db import database_url
from crawler.store.sql import open_store
from crawler.testsite import BYTES_PATH, title_of

pytest_plugins = ["conftest_db"]
PAGES = 300


def served(url: str) -> int:
    with urllib.request.urlopen(url.rstrip("/") + BYTES_PATH, timeout=10) as resp:
        return int(json.load(resp))


def cli(*args: str) -> None:
    result = run_cli(*args, "--quiet", "--parse-workers", "1")
    assert result.returncode == 0, result.stderr


def query(db: str, sql: str) -> list[tuple]:
    engine = create_engine(database_url(db))
    try:
        with engine.connect() as conn:
            return [tuple(row) for row in conn.execute(text(sql))]
    finally:
        engine.dispose()


def crawl_then_recrawl(site_url: str, db: str, engine: str) -> tuple[int, int]:
    """Body bytes the site served to a crawl, then to its recrawl."""
    before = served(site_url)
    cli(site_url, "--db", db, "--engine", engine, "--concurrency", "8")
    middle = served(site_url)
    cli("recrawl", "--db", db, "--engine", engine)
    return middle - before, served(site_url) - middle


def assert_carried_forward(db: str) -> None:
    assert query(db, "SELECT id, recrawl_of FROM crawls ORDER BY id") == [(1, None), (2, 1)]
    new = {r[0]: r[1:] for r in query(db, "SELECT url, status, unchanged, title, content_hash, etag, text "
                                          "FROM pages WHERE crawl_id = 2")}
    old = {r[0]: r[1:] for r in query(db, "SELECT url, status, unchanged, title, content_hash, etag, text "
                                          "FROM pages WHERE crawl_id = 1")}
    assert set(new) == set(old) and len(new) == PAGES
    page = next(url for url in new if url.endswith("/page/7"))
    assert new[page][:3] == (304, True, title_of(7))
    assert new[page][3:] == old[page][3:] and old[page][4]  # hash, etag and text carried forward
    links = "SELECT count(*) FROM links JOIN pages ON pages.id = links.page_id WHERE crawl_id = {}"
    assert query(db, links.format(2)) == query(db, links.format(1)) != [(0,)]


def test_a_recrawl_of_an_unchanged_site_transfers_under_5_percent(site_factory, tmp_path, engine: str) -> None:
    site = site_factory("--pages", str(PAGES), "--fanout", "7")
    db = str(tmp_path / "crawl.db")
    first, second = crawl_then_recrawl(site.url, db, engine)
    assert second < 0.05 * first, (first, second)
    assert_carried_forward(db)


def test_recrawl_on_postgresql(site_factory, pg_db: str) -> None:
    site = site_factory("--pages", str(PAGES), "--fanout", "7")
    first, second = crawl_then_recrawl(site.url, pg_db, "threads")
    assert second < 0.05 * first
    assert_carried_forward(pg_db)


def test_recrawl_of_no_crawl_is_one_line(tmp_path) -> None:
    missing = tmp_path / "missing.db"
    result = run_cli("recrawl", "--db", str(missing))
    assert result.returncode == 1 and "no database at" in result.stderr and not missing.exists(), result.stderr
    empty = tmp_path / "empty.db"
    open_store(str(empty)).close()
    result = run_cli("recrawl", "--db", str(empty))
    assert result.returncode == 1 and result.stderr.strip() == "crawl: no crawl in this database"


def test_an_interrupted_recrawl_resumes_as_a_recrawl(site_factory, tmp_path: Path) -> None:
    """Ctrl-C in the middle of a recrawl: `crawl --db` resumes it (the same crawl, still a recrawl of the
    first), and it ends with every URL once, 304s carrying the earlier fields."""
    site = site_factory("--pages", str(PAGES), "--fanout", "7", "--latency", "0.01")
    db = tmp_path / "crawl.db"
    cli(site.url, "--db", str(db), "--concurrency", "8")
    job = Job("recrawl", "--db", str(db), "--concurrency", "2", "--per-host", "2", "--quiet")
    wait_for(lambda: count(db, "SELECT count(*) FROM pages WHERE crawl_id = 2") >= 20, "20 recrawled pages", job)
    job.signal(signal.SIGINT, group=False)
    assert job.wait(30) == 130, job.stderr
    assert query(str(db), "SELECT status FROM crawls WHERE id = 2") == [("interrupted",)]
    cli("--db", str(db), "--concurrency", "8")
    assert query(str(db), "SELECT status FROM crawls ORDER BY id") == [("finished",), ("finished",)]
    assert query(str(db), "SELECT count(*), count(DISTINCT url) FROM pages WHERE crawl_id = 2") == [(PAGES, PAGES)]
    assert_carried_forward(str(db))
