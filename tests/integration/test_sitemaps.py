"""Sitemaps: robots.txt's Sitemap: lines and --sitemap, indexes, gzip, text sitemaps, malformed XML and
bombs, all through the same scope and robots.txt rules as links; stored as page rows with their URLs as
links (and <lastmod>); over both engines."""

from __future__ import annotations

import gzip
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import run_cli
from servers import AdversarialServer, serve, static

NS = 'xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"'
HTML = b"<html><title>t</title><body>no links here</body></html>"


def urlset(*locs: str, close: bool = True) -> bytes:
    items = "".join(f"<url><loc>{loc}</loc><lastmod>2024-01-0{i + 1}</lastmod></url>" for i, loc in enumerate(locs))
    return f'<?xml version="1.0"?><urlset {NS}>{items}{"</urlset>" if close else ""}'.encode()


@pytest.fixture(scope="module")
def server() -> Iterator[AdversarialServer]:
    with serve() as server:
        base = server.url("")
        server.mount("/robots.txt", static(f"User-agent: *\nDisallow: /private\nSitemap: {base}/index.xml\n".encode(),
                                           content_type="text/plain"))
        server.mount("/index.xml", static(
            f'<sitemapindex {NS}><sitemap><loc>{base}/one.xml.gz</loc></sitemap>'
            f'<sitemap><loc>/two.txt</loc></sitemap></sitemapindex>'.encode(), content_type="application/xml"))
        server.mount("/one.xml.gz", static(gzip.compress(urlset("/orphan1", "/private/x", "http://other.example/")),
                                           content_type="application/gzip"))
        server.mount("/two.txt", static(f"{base}/orphan2\n".encode(), content_type="text/plain"))
        server.mount("/broken.xml", static(urlset("/orphan3", close=False), content_type="application/xml"))
        server.mount("/bomb.xml.gz", static(gzip.compress(b" " * 2_000_000), content_type="application/gzip"))
        for path in ("/", "/orphan1", "/orphan2", "/orphan3", "/private/x"):
            server.mount(path, static(HTML))
        yield server


def crawl(db: Path, *args: str) -> dict[str, tuple]:
    result = run_cli(*args, "--db", str(db), "--quiet", "--parse-workers", "1", "--max-bytes", "1000000")
    assert result.returncode == 0, result.stderr
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT url, status, kind, error FROM pages").fetchall()
    return {"/" + url.split("/", 3)[3]: (status, kind, error) for url, status, kind, error in rows}


def test_robots_sitemaps_index_gzip_and_text(server: AdversarialServer, tmp_path: Path, engine: str) -> None:
    db = tmp_path / "crawl.db"
    pages = crawl(db, server.url("/"), "--engine", engine)
    assert pages["/index.xml"][:2] == (200, "sitemap index")
    assert pages["/one.xml.gz"][:2] == (200, "sitemap") and pages["/two.txt"][:2] == (200, "sitemap")
    assert pages["/orphan1"] == (200, "html", None) and pages["/orphan2"] == (200, "html", None)
    assert pages["/private/x"][0] is None and "robots" in pages["/private/x"][2]  # refused, not fetched
    assert not server.hits("/private/x") and "/" not in [p for p in pages if "other.example" in p]
    with sqlite3.connect(db) as conn:
        lastmod = conn.execute("SELECT links.lastmod FROM links JOIN pages ON pages.id = links.page_id "
                               "WHERE pages.url LIKE '%one.xml.gz' AND links.url LIKE '%orphan1'").fetchall()
    assert lastmod == [("2024-01-01",)]


def test_no_sitemaps_and_given_ones(server: AdversarialServer, tmp_path: Path) -> None:
    pages = crawl(tmp_path / "off.db", server.url("/"), "--no-sitemaps")
    assert set(pages) == {"/"}
    pages = crawl(tmp_path / "given.db", server.url("/"), "--no-sitemaps", "--sitemap", server.url("/broken.xml"),
                  "--sitemap", server.url("/bomb.xml.gz"))
    status, kind, error = pages["/broken.xml"]
    assert (status, kind) == (200, "sitemap") and error.startswith("sitemap error: ")  # and still read:
    assert pages["/orphan3"] == (200, "html", None)
    assert pages["/bomb.xml.gz"][2] == "sitemap error: too large: more than 1000000 bytes inflated"
