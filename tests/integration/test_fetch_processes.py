"""Fetching in the extraction processes (the default; crawler.fetch.processes), through the real CLI:
it stores what fetching in the crawl process stores, the cookies one fetch process receives are sent by
the others, redirect hops are decided by the crawl process, and a fetch process killed mid-fetch costs
only the page it held (an error row that says so): it is replaced and the crawl goes on."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

from conftest import CLI_TIMEOUT, ROOT, run_cli
from servers import AdversarialServer, redirect, serve, static

COLUMNS = "url, final_url, status, error, title, length, content_hash"
WAIT = 20.0  # seconds any wait here may take


def rows(db: Path, sql: str) -> list[tuple]:
    with sqlite3.connect(db) as conn:
        return sorted(conn.execute(sql).fetchall())


def crawl(db: Path, *args: str) -> subprocess.CompletedProcess[str]:
    result = run_cli(*args, "--db", str(db), "--quiet", "--parse-workers", "2", "--allow-private")
    assert result.returncode == 0, result.stderr
    return result


def mount_site(server: AdversarialServer) -> None:
    """Pages, a redirect followed in place (/old -> /new), one left to the frontier (/twice -> /a, which
    is linked too), a non-HTML file and a sitemap robots.txt names."""
    pages = {"/": ["/a", "/b", "/old", "/twice", "/file.txt"], "/a": ["/b", "/c"], "/b": ["/"], "/c": [],
             "/new": ["/from-new"], "/from-new": [], "/listed": []}
    for path, links in pages.items():
        anchors = "".join(f'<a href="{link}">{link}</a>' for link in links)
        server.mount(path, static(f"<html><title>t{path}</title>{anchors}</html>".encode()))
    server.mount("/old", redirect("/new", 301))
    server.mount("/twice", redirect("/a"))
    server.mount("/file.txt", static(b"plain", content_type="text/plain"))
    server.mount("/robots.txt", static(f"Sitemap: {server.url('/sitemap.xml')}\n".encode(), content_type="text/plain"))
    sitemap = f'<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"><url><loc>{server.url("/listed")}</loc></url></urlset>'
    server.mount("/sitemap.xml", static(sitemap.encode(), content_type="application/xml"))


def test_fetching_in_the_extraction_processes_stores_what_the_crawl_process_would(tmp_path: Path,
                                                                                  engine: str) -> None:
    with serve() as server:
        mount_site(server)
        crawl(tmp_path / "apart.db", server.url("/"), "--engine", engine)
        crawl(tmp_path / "here.db", server.url("/"), "--engine", engine, "--no-fetch-processes")
    apart, here = (rows(tmp_path / name, f"SELECT {COLUMNS} FROM pages") for name in ("apart.db", "here.db"))
    assert apart == here
    assert (server.url("/old"), server.url("/new"), 200, None, "t/new") in [row[:5] for row in apart]
    assert {row[0] for row in apart} >= {server.url(p) for p in ("/from-new", "/listed", "/file.txt", "/twice")}
    links = "SELECT p.url, l.url, l.anchor FROM links l JOIN pages p ON p.id = l.page_id"
    assert rows(tmp_path / "apart.db", links) == rows(tmp_path / "here.db", links)


def test_a_cookie_one_fetch_process_got_is_sent_by_the_others(tmp_path: Path) -> None:
    """/ sets a session cookie; each of the 20 pages it links to answers 403 without it. The pages go to
    both fetch processes in turn, one at a time (--concurrency 1)."""
    with serve() as server:
        server.mount("/", static(b"<html>" + b"".join(b'<a href="/p/%d">p</a>' % n for n in range(20)) + b"</html>",
                                 headers=[("Set-Cookie", "session=s1; Path=/")]))
        server.mount("/robots.txt", static(b"", status=404))

        def page(h: object) -> None:
            ok = "session=s1" in (h.headers.get("Cookie") or "")  # type: ignore[attr-defined]
            static(b"<html><title>in</title></html>" if ok else b"no", 200 if ok else 403)(h)  # type: ignore[arg-type]

        server.mount("/p/", page)
        crawl(tmp_path / "crawl.db", server.url("/"), "--concurrency", "1")
    assert rows(tmp_path / "crawl.db", "SELECT status, count(*) FROM pages GROUP BY status") == [(200, 21)]


def fetch_processes(pid: int) -> list[int]:
    """The crawl's spawned children (its fetch processes; the resource tracker is not spawn_main)."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [int(child) for child in children
            if b"spawn_main" in Path(f"/proc/{child}/cmdline").read_bytes()]


def test_a_fetch_process_killed_mid_fetch_costs_only_the_page_it_held(tmp_path: Path) -> None:
    """With one request in flight (--concurrency 1), every fetch process is SIGKILLed while /slow is being
    answered: /slow gets an error row naming what failed, and the replacements fetch the rest."""
    arrived, released = threading.Event(), threading.Event()
    db = tmp_path / "crawl.db"
    with serve() as server:
        server.mount("/", static(b'<html><a href="/slow">s</a> <a href="/later">l</a></html>'))
        server.mount("/later", static(b'<html><title>later</title><a href="/after">a</a></html>'))
        server.mount("/after", static(b"<html><title>after</title></html>"))

        def slow(h: object) -> None:
            arrived.set()
            released.wait(WAIT)
            static(b"<html><title>slow</title></html>")(h)  # type: ignore[arg-type]

        server.mount("/slow", slow)
        command = [sys.executable, "-m", "crawler", server.url("/"), "--db", str(db), "--quiet", "--ignore-robots",
                   "--allow-private", "--concurrency", "1", "--parse-workers", "2"]
        env = {k: v for k, v in os.environ.items() if not k.startswith("CRAWL_")}
        with subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) as crawl_process:
            try:
                assert arrived.wait(WAIT), "/slow was never asked for"
                killed = fetch_processes(crawl_process.pid)
                for child in killed:
                    os.kill(child, signal.SIGKILL)
                released.set()
                _, err = crawl_process.communicate(timeout=CLI_TIMEOUT)
            finally:
                crawl_process.kill()
    assert len(killed) == 2
    assert crawl_process.returncode == 0, err
    assert rows(db, "SELECT url, status, error, title FROM pages") == [
        (server.url("/"), 200, None, None),
        (server.url("/after"), 200, None, "after"),
        (server.url("/later"), 200, None, "later"),
        (server.url("/slow"), None, "internal: its fetch process died while fetching", None),
    ]


BIG_PAGE = b"<html><body>" + b"".join(b"<div><p><b>x</b> <a href='#a%d'>l</a></p></div>" % i
                                      for i in range(200_000)) + b"</body></html>"  # 9 MB, ~2 s of extraction


def test_a_page_slow_to_extract_does_not_time_out_the_fetches_beside_it(tmp_path: Path) -> None:
    """One fetch process (--parse-workers 1): while it extracts a page for seconds, the fetches it has in
    flight (0.6 s each, deadline 1.5 s) go on; and --parse-timeout cuts such a page off."""
    with serve() as server:
        slow = [server.url(f"/sleep/600?n={n}") for n in range(12)]
        server.mount("/", static("".join(f'<a href="{url}">s</a>' for url in ["/big", *slow]).encode()))
        server.mount("/big", static(BIG_PAGE))
        db = tmp_path / "crawl.db"
        result = run_cli(server.url("/"), "--db", str(db), "--parse-workers", "1", "--ignore-robots",
                         "--timeout", "1.5", "--retries", "0", "--concurrency", "16", "--per-host", "16", "--quiet")
        assert result.returncode == 0, result.stderr
        assert rows(db, "SELECT url, error FROM pages WHERE error IS NOT NULL") == []
        stored = dict(rows(db, "SELECT url, status FROM pages"))
        assert [stored.get(url) for url in [server.url("/big"), *slow]] == [200] * 13
        db = tmp_path / "impatient.db"
        result = run_cli(server.url("/big"), "--db", str(db), "--parse-workers", "1", "--ignore-robots",
                         "--parse-timeout", "0.1", "--quiet")
        assert result.returncode == 0, result.stderr
    assert rows(db, "SELECT status, error FROM pages") == [(200, "parse error: extraction took over 0.1 s")]
