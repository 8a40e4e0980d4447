"""What tests/integration/test_hostile*.py crawl, and how: sites mounted on tests/servers.py servers that lead
a crawler into every kind of trouble (adversarial routes, redirects, private addresses, encodings, non-HTML,
broken HTML, traps), and `crawl`, which runs the real CLI in a subprocess and measures it (run time, and
the peak memory of the whole process tree, extraction processes included).

Each `build_*`/`plain` mounts one site and returns the seeds to crawl; the constants say what to expect.
"""

from __future__ import annotations

import os
import random
import sqlite3
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any, Self
from urllib.parse import urlsplit

import psutil
import pytest
from conftest import ROOT
from servers import AdversarialServer, Route, _Handler, redirect, static

MiB = 1024 * 1024
CRAWL_TIMEOUT = 60.0  # no crawl here may take longer; each test bounds its own much tighter
AGENT = "hostile-test/1.0 (+http://example.org/bot)"
# Everything is disallowed except for our product token, which may go anywhere but /private.
ROBOTS = b"User-agent: *\nDisallow: /\n\nUser-agent: hostile-test\nDisallow: /private\n"
TEXT = "text/plain"
HTML = "text/html"

TIMEOUTS = ["/hang", "/stall", "/trickle", "/trickle-headers"]
TOO_LARGE = ["/huge", "/huge-chunked", "/gzip-bomb"]
ADVERSARIAL = [*TIMEOUTS, *TOO_LARGE, "/reset", "/always-500", "/404", "/flaky?fails=1", "/429?after=2"]
REDIRECTS = ["/hop/1", "/to-ok", "/ok?direct", "/loop-a", "/redirect/12", "/to-private", "/to-localhost",
             "/to-decimal"]
LONG = "/long/" + "x" * 2100  # over Limits.max_url_length
CONTENT = ["/doc.pdf", "/img.png", "/garbage", "/broken", "/cal/2024/01", "/rep/a/b/a/b/", LONG]

# path -> (Content-Type, title, a piece of the visible text, the codec the text must be decoded with)
ENCODINGS: dict[str, tuple[str, str, str, str]] = {
    "/enc/gbk": ("text/html; charset=gbk", "中文标题", "你好，世界。", "gb18030"),
    "/enc/sjis": (HTML, "日本語のページ", "こんにちは、世界。", "cp932"),
    "/enc/cp1251": (HTML, "Привет, мир", "Съешь же ещё этих мягких французских булок", "cp1251"),
    "/enc/utf8": (HTML, "Ünïcödé ☃ 标题", "naïve café — ✓", "utf-8"),
    "/enc/bom": ("text/html; charset=iso-8859-1", "BOM: café", "le BOM gagne", "utf-8"),
}
_HEADS = {  # what each page declares in its <head> (the gbk page's <meta> lies: the header wins)
    "/enc/gbk": ("gbk", '<meta charset="windows-1251">'),
    "/enc/sjis": ("shift_jis", '<meta charset="shift_jis">'),
    "/enc/cp1251": ("windows-1251",
                    '<meta http-equiv="Content-Type" content="text/html; charset=windows-1251">'),
    "/enc/utf8": ("utf-8", ""),
    "/enc/bom": ("utf-8-sig", ""),
}

PDF = b"%PDF-1.4\n1 0 obj << /URI (/from-pdf) >> endobj\n<a href='/from-pdf'>x</a> http://x/from-pdf\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR<a href='/from-img'>x</a>" + bytes(200)
GARBAGE = random.Random(7).randbytes(20_000)
BROKEN = b"""<html><head><title>Broken page</title><body><div><p>unclosed <b>bold <i>italic
<a href="/from-unclosed">unclosed anchor
<!-- <a href="/in-comment">commented</a> -->
<script>document.write('<a href="/in-script">scripted</a>');</script>
<a href="javascript:alert(1)">js</a> <a href="mailto:a@b.c">mail</a> <a href="tel:+123">tel</a>
<a href="data:text/html,<a href=/in-data>x</a>">data</a>
<a href="   /padded?x=1
   ">padded</a><table><tr><td>cell"""
BROKEN_LINKS = {"/from-unclosed", "/padded?x=1"}  # the only ones a crawler may take from /broken
NEVER = ["/from-pdf", "/from-img", "/in-comment", "/in-script", "/in-data", "/private/secret"]


def page(title: str, body: str = "") -> bytes:
    return f"<!doctype html><html><head><title>{title}</title></head><body>{body}</body></html>".encode()


def links(*hrefs: str) -> str:
    return "".join(f'<a href="{href}">{href[:40]}</a> ' for href in hrefs)


def encoded(path: str) -> Route:
    content_type, title, text, _ = ENCODINGS[path]
    charset, meta = _HEADS[path]
    html = f"<html><head>{meta}<title>{title}</title></head><body><p>{text}</p></body></html>"
    return static(html.encode(charset), content_type=content_type)


def calendar(h: _Handler) -> None:
    """/cal/<year>/<month>: a month linking to the next one, forever."""
    year, month = (int(part) for part in urlsplit(h.path).path.split("/")[2:4])
    y, m = divmod(year * 12 + month, 12)
    static(page(f"{year}-{month:02d}", links(f"/cal/{y}/{m + 1:02d}")))(h)


def private_urls(other: AdversarialServer, second: AdversarialServer) -> list[str]:
    """Links to hosts that are not the seed's and resolve to loopback, in several spellings."""
    port = other.port
    return [f"http://localhost:{port}/direct", f"http://2130706433:{port}/decimal",
            f"http://0x7f.1:{port}/hex", f"http://[::1]:{port}/v6", second.url("/second")]


def build_hostile(main: AdversarialServer, other: AdversarialServer, second: AdversarialServer) -> list[str]:
    """The big one: an index linking to every adversarial route, redirect, private address, encoding,
    non-HTML body, broken page and trap. `other` and `second` are the private targets (never hit)."""
    index = [*ADVERSARIAL, *REDIRECTS, *ENCODINGS, *CONTENT, *private_urls(other, second)]
    mounts: dict[str, Route | str] = {
        "/": static(page("Hostile index", links(*index))),
        "/robots.txt": static(ROBOTS, content_type=TEXT),
        "/hop/1": redirect("/hop/2"), "/hop/2": redirect("/hop/3"), "/hop/3": redirect("/landing"),
        "/landing": static(page("Landing", "the end of the chain")),
        "/to-ok": redirect("/ok?direct"), "/to-private": redirect("/private/secret"),
        "/to-localhost": redirect(f"http://localhost:{other.port}/via-redirect"),
        "/to-decimal": redirect(f"http://2130706433:{other.port}/via-decimal"),
        "/doc.pdf": static(PDF, content_type="application/pdf"),
        "/img.png": static(PNG, content_type="image/png"),
        "/garbage": static(GARBAGE, content_type=HTML), "/broken": static(BROKEN, content_type=HTML),
        "/cal/": calendar, "/rep/": static(page("nesting", links("a/b/"))),
        **{path: encoded(path) for path in ENCODINGS},
    }
    for path, route in mounts.items():
        main.mount(path, route)
    return [main.url("/")]


def plain(server: AdversarialServer, paths: list[str], robots: Route | str | None = None) -> list[str]:
    """An index linking to `paths`; /p is a page without links; robots.txt as given (default: a 404)."""
    server.mount("/", static(page("index", links(*paths))))
    server.mount("/p", static(page("plain", "no links here")))
    if robots is not None:
        server.mount("/robots.txt", robots)
    return [server.url("/")]


# --- running a crawl --------------------------------------------------------------------------------


@dataclass
class Run:
    """One finished CLI run: its database, exit, run time, peak memory, and the servers it crawled."""

    db: Path
    returncode: int
    stderr: str
    seconds: float
    peak_rss: int  # bytes: the sum over the process tree (crawl + extraction processes), sampled
    servers: dict[str, AdversarialServer] = field(default_factory=dict)

    def rows(self, sql: str, *args: object) -> list[tuple[Any, ...]]:
        with sqlite3.connect(self.db) as conn:
            return conn.execute(sql, args).fetchall()

    def page(self, url: str) -> dict[str, Any]:
        """The pages row of `url`, by column name."""
        with sqlite3.connect(self.db) as conn:
            conn.row_factory = sqlite3.Row
            row = conn.execute("SELECT * FROM pages WHERE url = ?", (url,)).fetchone()
        assert row is not None, f"no row for {url}"
        return dict(row)

    def urls(self) -> set[str]:
        return {url for (url,) in self.rows("SELECT url FROM pages")}


class TreeRss:
    """Samples the summed RSS of a process and all its descendants every 10 ms, in a thread."""

    def __init__(self, pid: int) -> None:
        self.proc, self.peak, self._done = psutil.Process(pid), 0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join(5)

    def _run(self) -> None:
        while not self._done.wait(0.01):
            self.peak = max(self.peak, self._sample())

    def _sample(self) -> int:
        total = 0
        try:
            for proc in [self.proc, *self.proc.children(recursive=True)]:
                total += proc.memory_info().rss
        except psutil.Error:  # a process ended between listing and reading
            pass
        return total


def crawl(db: Path, engine: str, seeds: list[str], *options: str) -> Run:
    """`python -m crawler SEEDS --engine E --db DB -q OPTIONS`, measured; fails past CRAWL_TIMEOUT."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRAWL_")}
    cmd = [sys.executable, "-m", "crawler", *seeds, "--engine", engine, "--db", str(db), "-q", *options]
    started = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    with TreeRss(proc.pid) as rss:
        try:
            _, stderr = proc.communicate(timeout=CRAWL_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            pytest.fail(f"crawl did not finish in {CRAWL_TIMEOUT} s: {cmd}")
    return Run(db, proc.returncode, stderr, time.monotonic() - started, rss.peak)


def gaps(server: AdversarialServer) -> list[float]:
    """Seconds between consecutive request arrivals at `server`."""
    return [b.at - a.at for a, b in pairwise(server.log)]


def paths(server: AdversarialServer) -> list[str]:
    return [hit.path for hit in server.log]
