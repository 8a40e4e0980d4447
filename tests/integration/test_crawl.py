"""The crawl, end to end: the real CLI on both engines against a local synthetic site."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from conftest import run_cli

from crawler.testsite import links_of, path_of, reachable, title_of

PAGES, FANOUT = 60, 10


def rows(db: Path, sql: str, *args: object) -> list[tuple]:
    with sqlite3.connect(db) as conn:
        return conn.execute(sql, args).fetchall()


def crawl(db: Path, *args: str) -> None:
    result = run_cli(*args, "--db", str(db), "--quiet", "--parse-workers", "2")
    assert result.returncode == 0, result.stderr


def test_every_page_stored_once_with_its_fields(site_factory, db: Path, engine: str) -> None:
    site = site_factory("--pages", str(PAGES), "--fanout", str(FANOUT))
    crawl(db, site.url, "--engine", engine, "--concurrency", "8")
    pages = rows(db, "SELECT url, status, error, title, description, text, depth FROM pages")
    assert len(pages) == PAGES
    assert {url for url, *_ in pages} == {site.url.rstrip("/") + path_of(i) for i in range(PAGES)}
    by_url = {p[0]: p for p in pages}
    page7 = by_url[site.url + "page/7"]
    assert page7[1:5] == (200, None, title_of(7), "Description of page 7")
    assert "python" in page7[5] and "tracker" not in page7[5]  # text without the script
    assert page7[6] == reachable(PAGES, FANOUT)[7]
    assert rows(db, "SELECT status FROM crawls") == [("finished",)]


def test_links_are_stored_absolute_without_fragments_or_mailto(site_factory, db: Path, engine: str) -> None:
    site = site_factory("--pages", str(PAGES), "--fanout", str(FANOUT))
    crawl(db, site.url, "--engine", engine)
    links = rows(db, "SELECT l.url, l.anchor FROM links l JOIN pages p ON p.id = l.page_id "
                     "WHERE p.url = ?", site.url + "page/3")
    expected = {site.url.rstrip("/") + path_of(j) for j in links_of(3, PAGES, FANOUT)}
    urls = {url for url, _ in links}
    assert expected <= urls
    assert not any("mailto:" in u for u in urls)
    assert f"Link to {path_of(links_of(3, PAGES, FANOUT)[0])}" in {a for _, a in links}


def test_both_engines_store_the_same_rows(site_factory, tmp_path: Path) -> None:
    site = site_factory("--pages", str(PAGES), "--fanout", str(FANOUT))
    stored = {}
    for engine in ("gevent", "threads"):
        db = tmp_path / f"{engine}.db"
        crawl(db, site.url, "--engine", engine)
        # depth is left out: it is the depth at which a URL was first discovered, which depends on timing
        stored[engine] = rows(db, "SELECT url, final_url, status, error, title, description, text, "
                                  "content_hash, length FROM pages ORDER BY url")
    assert stored["gevent"] == stored["threads"]


def test_max_depth(site_factory, db: Path, engine: str) -> None:
    site = site_factory("--pages", str(PAGES), "--fanout", str(FANOUT))
    crawl(db, site.url, "--engine", engine, "--max-depth", "1")
    expected = reachable(PAGES, FANOUT, max_depth=1)
    assert rows(db, "SELECT count(*), max(depth) FROM pages") == [(len(expected), 1)]


def test_max_pages_is_exact(site_factory, db: Path, engine: str) -> None:
    site = site_factory("--pages", str(PAGES), "--fanout", str(FANOUT))
    crawl(db, site.url, "--engine", engine, "--max-pages", "17", "--concurrency", "10")
    assert rows(db, "SELECT count(*) FROM pages") == [(17,)]


def test_include_and_exclude(site_factory, db: Path, engine: str) -> None:
    site = site_factory("--pages", str(PAGES), "--fanout", str(FANOUT))
    crawl(db, site.url, "--engine", engine, "--exclude", r"/page/\d*5$")
    urls = [u for (u,) in rows(db, "SELECT url FROM pages")]
    assert urls and not any(u.endswith("5") for u in urls)
    db2 = db.with_name("include.db")
    crawl(db2, site.url, "--engine", engine, "--include", r"/page/[0-9]$")
    urls = {u for (u,) in rows(db2, "SELECT url FROM pages")}
    assert urls <= {site.url} | {site.url + f"page/{i}" for i in range(10)}


def test_scope_host_stays_on_the_seed_host(site_factory, db: Path, engine: str) -> None:
    other = site_factory("--pages", "5", "--host", "127.0.0.2")
    site = site_factory("--pages", "5", "--extra", other.url + "page/1")
    crawl(db, site.url, "--engine", engine, "--allow-private")
    assert not rows(db, "SELECT url FROM pages WHERE url LIKE 'http://127.0.0.2%'")
    crawl(db.with_name("all.db"), site.url, "--engine", engine, "--scope", "all", "--allow-private")
    assert rows(db.with_name("all.db"), "SELECT count(*) FROM pages WHERE url LIKE 'http://127.0.0.2%'")[0][0] == 5


def test_gevent_with_two_extraction_processes_does_not_hang(site_factory, db: Path) -> None:
    site = site_factory("--pages", "200", "--fanout", str(FANOUT))
    result = run_cli(site.url, "--engine", "gevent", "--parse-workers", "2", "--concurrency", "20",
                     "--db", str(db), timeout=60)
    assert result.returncode == 0, result.stderr
    assert rows(db, "SELECT count(*), count(title) FROM pages") == [(200, 200)]
    assert "crawl 1 finished: 200 pages" in result.stdout
