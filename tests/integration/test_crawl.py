"""The crawl, end to end: the real CLI on both engines against a local synthetic site."""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import sqlite3
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import Any

from conftest import run_cli
from servers import AdversarialServer, redirect, serve, static
from sqlalchemy import text

from crawler.crawl import Crawl
from crawler.fetch.client import Client, make_session
from crawler.fetch.guard import AddressGuard
from crawler.progress import Progress
from crawler.settings import Limits, Settings
from crawler.store.sql import Store, open_store
from crawler.testsite import links_of, path_of, reachable, title_of
from crawler.urls import Scope, host_of

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


class HoldBack:
    """An engine that runs each job as it is submitted and hands the outcomes back one per poll, in that
    order, except the outcome for `late`, held back until the one for `first` is handed back (or is all
    that is left): a page's answer arriving after other pages' answers, deterministically."""

    name = "hold-back"

    def __init__(self, late: str, first: str) -> None:
        self.late, self.first, self.first_done = late, first, False
        self.done: list[tuple[str, Any]] = []  # (the job's URL, its outcome)
        self._session = make_session(2, Client("test"))

    def submit(self, fn: Callable[[Any], Any], arg: Any) -> None:
        self.done.append((arg.url, fn(arg)))

    def results(self, timeout: float) -> list[Any]:
        for i, (url, outcome) in enumerate(self.done):
            if url != self.late or self.first_done or len(self.done) == 1:
                del self.done[i]
                self.first_done |= url == self.first
                return [outcome]
        return []

    def session(self) -> Any:
        return self._session

    def tell(self, item: Any) -> None:
        pass  # (the loop frees a host's slot on the outcome then)

    def aside(self, fn: Callable[..., Any], args: tuple[Any, ...], timeout: float) -> Any:
        return fn(*args)  # in place: the order the outcomes arrive in is the engine's

    def close(self) -> None:
        self._session.close()


def crawl_held_back(store: Store, server: AdversarialServer, settings: Settings, late: str, first: str) -> None:
    """Crawl the server from / in process, on a HoldBack engine holding `late` back until `first`."""
    seeds = [server.url("/")]
    crawl_id = store.start_crawl(seeds, settings.to_json())
    frontier = store.frontier(crawl_id)
    frontier.add((url, host_of(url), 0) for url in seeds)
    engine = HoldBack(late=server.url(late), first=server.url(first))
    crawl = Crawl(settings, frontier, store.pages(crawl_id), engine, Scope.build(seeds, "host", (), ()))
    assert crawl.run(Progress(enabled=False)) == "finished"


def test_max_depth_counts_the_shortest_path_found_before_the_fetch(tmp_path: Path) -> None:
    """X is found first at depth 3 (/ -> /b -> /c -> /x) and then at depth 2 (/ -> /a -> /x), while it
    is still queued: it is fetched at depth 2, so its link /z (depth 3) is within --max-depth 3."""
    site = {"/": ["/a", "/b"], "/a": ["/x"], "/b": ["/c", *(f"/d{i}" for i in range(20))], "/c": ["/x"],
            "/x": ["/z"]}
    with serve() as server, closing(open_store(str(tmp_path / "crawl.db"))) as store:
        for path in [*site, "/z", *(f"/d{i}" for i in range(20))]:
            links = "".join(f'<a href="{link}">{link}</a>' for link in site.get(path, []))
            server.mount(path, static(f"<html><title>{path}</title>{links}</html>".encode()))
        settings = Settings(limits=Limits(concurrency=2, per_host=2), parse_workers=0, ignore_robots=True,
                            max_depth=3)
        crawl_held_back(store, server, settings, late="/a", first="/c")
        with store.engine.connect() as conn:
            depths = dict(conn.execute(text("SELECT url, depth FROM frontier")).all())
    assert depths[server.url("/x")] == 2 and depths[server.url("/z")] == 3


def redirect_race(tmp_path: Path, x_route: Any) -> tuple[AdversarialServer, dict[str, tuple[str, str]]]:
    """/p redirects to /x, which the crawl follows in place; before /p's outcome is in, /q's link to /x
    is queued and claimed. The server, and {url: (final_url, error)} of the pages stored."""
    with serve() as server, closing(open_store(str(tmp_path / "crawl.db"))) as store:
        server.mount("/", static(b'<html><a href="/p">p</a> <a href="/q">q</a></html>'))
        server.mount("/p", redirect("/x"))
        server.mount("/q", static(b'<html><a href="/x">x</a></html>'))
        server.mount("/x", x_route)
        settings = Settings(limits=Limits(concurrency=2, per_host=2, retries=0), parse_workers=0,
                            ignore_robots=True)
        crawl_held_back(store, server, settings, late="/p", first="/x")
        with store.engine.connect() as conn:
            assert set(conn.execute(text("SELECT state FROM frontier")).scalars()) == {"done"}
            rows = conn.execute(text("SELECT url, final_url, error FROM pages")).all()
    return server, {url.removeprefix(server.base): (final, error) for url, final, error in rows}


def test_a_redirect_target_linked_directly_meanwhile_is_fetched_once(tmp_path: Path) -> None:
    """The job for /x waits for /p's chain, which stands for it: the server sees /x once."""
    server, pages = redirect_race(tmp_path, static(b"<html><title>x</title></html>"))
    assert len(server.hits("/x")) == 1
    assert pages == {"/": (server.url("/"), None), "/p": (server.url("/x"), None), "/q": (server.url("/q"), None)}


def test_a_redirect_target_whose_chain_failed_is_fetched_on_its_own(tmp_path: Path) -> None:
    server, pages = redirect_race(tmp_path, "/reset")
    assert len(server.hits("/x")) == 2
    assert pages["/p"][1].startswith("connection error") and pages["/x"][1].startswith("connection error")


def test_what_a_browser_follows_and_every_body_hashed(tmp_path: Path, engine: str) -> None:
    """A meta refresh leads somewhere (followed like a link); `<a href="">` is the page itself; a PDF's
    body has a content_hash like an HTML page's, so two copies of one PDF are found."""
    pdf = b"%PDF-1.4 not really a pdf\n"
    with serve() as server:
        server.mount("/", static(b'<html><meta http-equiv="Refresh" content="0;  URL=\'/moved\'">'
                                 b'<a href="">self</a><a href="/a.pdf">a</a><a href="/b.pdf">b</a></html>'))
        server.mount("/moved", static(b"<html><title>moved</title></html>"))
        for path in ("/a.pdf", "/b.pdf"):
            server.mount(path, static(pdf, content_type="application/pdf"))
        db = tmp_path / "crawl.db"
        crawl(db, server.url("/"), "--engine", engine, "--ignore-robots", "--allow-private")
        stored = dict(rows(db, "SELECT url, content_hash FROM pages"))
        linked = {url for (url,) in rows(db, "SELECT l.url FROM links l JOIN pages p ON p.id = l.page_id "
                                            "WHERE p.url = ?", server.url("/"))}
    assert set(stored) == {server.url(p) for p in ("/", "/moved", "/a.pdf", "/b.pdf")}
    assert stored[server.url("/a.pdf")] == stored[server.url("/b.pdf")] == hashlib.sha1(pdf).hexdigest()
    assert server.url("/") in linked and server.url("/moved") in linked


def test_nofollow_links_are_stored_not_followed_unless_robots_are_ignored(tmp_path: Path, engine: str) -> None:
    with serve() as server:
        server.mount("/", static(b'<html><link rel="canonical" href="/home"><a href="/a" rel="nofollow">a</a>'
                                 b'<a href="/meta">m</a></html>'))
        server.mount("/meta", static(b'<html><meta name="robots" content="noindex,nofollow"><a href="/b">b</a>'))
        for path in ("/a", "/b", "/home", "/robots.txt"):
            server.mount(path, static(b"<html>x</html>"))
        for n, extra in enumerate(([], ["--ignore-robots"])):
            db = tmp_path / f"crawl{n}.db"
            crawl(db, server.url("/"), "--engine", engine, "--allow-private", *extra)
            stored = {url.removeprefix(server.base): (canonical, noindex)
                      for url, canonical, noindex in rows(db, "SELECT url, canonical, noindex FROM pages")}
            flagged = dict(rows(db, "SELECT url, nofollow FROM links"))
            assert flagged == {server.url("/a"): 1, server.url("/meta"): 0, server.url("/b"): 1}
            assert stored["/"] == (server.url("/home"), 0) and stored["/meta"] == (None, 1)
            assert set(stored) == ({"/", "/meta"} if not extra else {"/", "/meta", "/a", "/b"})


def test_a_seed_that_redirects_to_another_host_crawls_that_host(tmp_path: Path, engine: str) -> None:
    """127.0.0.1 -> 127.0.0.2 (a moved site): the host the seed's redirect lands on is a seed host, in
    scope and trusted like the seed; the seed's own host stays in scope, a third host stays out."""
    with serve("127.0.0.2") as moved, serve() as old:
        old.mount("/", redirect(moved.url("/")))
        third = "http://127.0.0.3:9/"
        moved.mount("/", static(f'<a href="/a">a</a><a href="{old.url("/o")}">o</a><a href="{third}">3</a>'.encode()))
        old.mount("/o", static(b"<html>o</html>"))
        moved.mount("/a", static(b"<html>a</html>"))
        db = tmp_path / "crawl.db"
        crawl(db, old.url("/"), "--engine", engine)
        stored = {url for (url,) in rows(db, "SELECT url FROM pages WHERE error IS NULL")}
    assert stored == {old.url("/"), moved.url("/"), moved.url("/a"), old.url("/o")}


def test_only_a_private_seed_may_hand_its_trust_to_a_private_host() -> None:
    guard = AddressGuard([], allow_private=False)
    assert not guard.adopt("http://127.0.0.1/", "http://public.invalid/")  # the internet may not redirect us inward
    assert guard.check("http://127.0.0.1/") is not None
    assert guard.adopt("http://127.0.0.2:8000/", "http://127.0.0.1/") and guard.check("http://127.0.0.2:8000/") is None
    assert guard.check("http://127.0.0.2:6379/") is not None  # trusted on the target's port only
    assert guard.adopt("http://public.invalid/", "http://127.0.0.1/")


def test_a_seed_host_is_trusted_on_its_own_port_only(tmp_path: Path, engine: str) -> None:
    """A page on 127.0.0.1:A links to 127.0.0.1:B (Redis, say): in scope (--scope host compares hosts), but
    blocked unless --allow-private. A seed redirecting to another port of its host trusts that port."""
    with serve() as seed, serve() as inner, serve() as moved:
        secret = inner.url("/secret")
        seed.mount("/", static(f'<a href="{secret}">s</a>'.encode()))
        seed.mount("/r", redirect(moved.url("/")))
        moved.mount("/", static(f'<a href="{secret}">s</a><a href="/m">m</a>'.encode()))
        moved.mount("/m", static(b"<html>m</html>"))
        inner.mount("/", static(b"<html>inner</html>"))
        db = tmp_path / "crawl.db"
        crawl(db, seed.url("/"), seed.url("/r"), "--engine", engine, "--ignore-robots")
        assert inner.log == []
        crawl(db.with_name("allowed.db"), seed.url("/"), "--engine", engine, "--ignore-robots", "--allow-private")
        assert [hit.path for hit in inner.log] == ["/secret"]
    assert dict(rows(db, "SELECT url, error FROM pages")) == {
        seed.url("/"): None, seed.url("/r"): None, secret: "blocked: private address 127.0.0.1",
        moved.url("/"): None, moved.url("/m"): None}


def test_a_redirect_chain_across_hosts_is_bounded(tmp_path: Path, engine: str) -> None:
    """A chain through 13 hosts (127.0.0.2 -> .3 -> ... -> .14), each hop off-host and so queued as a new
    URL: the chain's hop count travels with the queued target, so the 11th hop (over the default 10) is
    a "too many redirects" row and no later host is asked."""
    hosts = [f"127.0.0.{n}" for n in range(2, 15)]
    with contextlib.ExitStack() as stack:
        servers = [stack.enter_context(serve(host)) for host in hosts]
        for server, following in itertools.pairwise(servers):
            server.mount("/", redirect(following.url("/")))
        servers[-1].mount("/", static(b"<html>the end</html>"))
        db = tmp_path / "crawl.db"
        crawl(db, servers[0].url("/"), "--engine", engine, "--scope", "all", "--allow-private",
              "--ignore-robots")
        asked = [len(server.hits("/")) for server in servers]
    assert asked == [1] * 11 + [0, 0]  # the seed and 10 redirects followed; the 11th is refused
    (last,) = rows(db, "SELECT url, status, error FROM pages WHERE error IS NOT NULL")
    assert last == (servers[10].url("/"), 302, "too many redirects: more than 10, across hosts")


BIG_PAGE = b"<html><body>" + b"".join(b"<div><p><b>x</b> <a href='#a%d'>l</a></p></div>" % i
                                      for i in range(60_000)) + b"</body></html>"  # ~2 s of BeautifulSoup


def test_parse_workers_0_does_not_hold_other_fetches(tmp_path: Path, engine: str) -> None:
    """--parse-workers 0: a page that takes seconds to extract runs on a thread of its own, so the fetches
    in flight meanwhile (0.6 s each, deadline 1.5 s) are not turned into false timeouts; and its
    --parse-timeout holds there too."""
    with serve() as server:
        slow = [server.url(f"/sleep/600?n={n}") for n in range(12)]
        server.mount("/", static("".join(f'<a href="{url}">s</a>' for url in ["/big", *slow]).encode()))
        server.mount("/big", static(BIG_PAGE))
        db = tmp_path / "crawl.db"
        result = run_cli(server.url("/"), "--db", str(db), "--engine", engine, "--parse-workers", "0",
                         "--ignore-robots", "--timeout", "1.5", "--retries", "0", "--concurrency", "16",
                         "--per-host", "16", "--quiet")
        assert result.returncode == 0, result.stderr
        assert rows(db, "SELECT url, error FROM pages WHERE error IS NOT NULL") == []
        stored = dict(rows(db, "SELECT url, status FROM pages"))
        assert [stored.get(url) for url in [server.url("/big"), *slow]] == [200] * 13
        db = tmp_path / "impatient.db"
        result = run_cli(server.url("/big"), "--db", str(db), "--engine", engine, "--parse-workers", "0",
                         "--ignore-robots", "--parse-timeout", "0.2", "--quiet")
        assert result.returncode == 0, result.stderr
    assert rows(db, "SELECT status, error FROM pages") == [(200, "parse error: extraction gave no answer in 0.2 s")]
