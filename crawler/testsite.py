"""A synthetic site: N generated, interlinked HTML pages served on 127.0.0.1 (for tests and `crawl bench`).

`python -m crawler.testsite --pages 1000` binds port 0 and prints its base URL on the first line of
stdout. Page 0 is `/`, page i is `/page/i`; every page is reachable from `/`. Pages are generated on
request from a fixed word list, so a 50k-page site costs no memory. The link graph is a pure function
(`links_of`), so tests can compute what a crawl must find (`reachable`). `GET /_hits` answers how often
each path was requested so far (JSON), so tests can count repeated requests across crawler runs, and
`GET /_bytes` the body bytes served so far. Pages carry an ETag and a Last-Modified and answer a matching
If-None-Match with 304 and no body (RFC 9110 13.1.2), as a recrawl expects of a real server.
`--latency S` makes every page take S seconds; `GET /_log` answers each page request's path, start and
end (the server's monotonic clock), so tests measure politeness as the server saw it.

Two page shapes: "simple" (the default: the tests' small pages) and "realistic" (`--html realistic`,
what the benchmarks crawl): a head full of meta, link and script tags, a header with a logo and a nav,
an article whose paragraphs carry inline links and markup, a related-links aside and a footer with
off-site links, about `size` bytes in all. `--write DIR` writes the site as static files (robots.txt,
index.html, page/N) for a static server such as nginx, instead of serving it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROBOTS_TXT = b"User-agent: *\nDisallow:\n"
HITS_PATH = "/_hits"  # JSON {path: requests served}, for tests that count repeated requests
BYTES_PATH = "/_bytes"  # JSON: the body bytes served so far (what a recrawl with validators saves)
LOG_PATH = "/_log"  # JSON [[path, start, end], ...] of the requests served (monotonic seconds)
LAST_MODIFIED = "Mon, 06 May 2024 08:00:00 GMT"
WORDS = ["python", "crawler", "greenlet", "thread", "process", "socket", "request", "response", "header", "body", "page", "link", "anchor", "title", "description", "text", "index", "frontier", "queue", "robots", "politeness", "deadline", "extraction", "database", "sqlite", "query", "schema", "migration", "engine", "worker", "pool", "scope", "depth", "host", "domain", "redirect", "charset"]


def path_of(i: int) -> str:
    return "/" if i == 0 else f"/page/{i}"


def links_of(i: int, pages: int, fanout: int) -> list[int]:
    """Page numbers that page i links to: its two tree children first (so all pages are reachable)."""
    tree = [c for c in (2 * i + 1, 2 * i + 2) if c < pages]
    extra = [(i * 31 + k * 17 + 7) % pages for k in range(max(0, fanout - len(tree)))]
    return tree + extra


def reachable(pages: int, fanout: int, max_depth: int | None = None) -> dict[int, int]:
    """Page number -> BFS depth from page 0, as a crawl with --max-depth must find them."""
    depth = {0: 0}
    todo = deque([0])
    while todo:
        i = todo.popleft()
        if max_depth is not None and depth[i] >= max_depth:
            continue
        for j in links_of(i, pages, fanout):
            if j not in depth:
                depth[j] = depth[i] + 1
                todo.append(j)
    return depth


def title_of(i: int) -> str:
    return f"Page {i} of the test site"


def paragraph(seed: int, words: int) -> str:
    return " ".join(WORDS[(seed * 7 + k * 13) % len(WORDS)] for k in range(words))


def render(i: int, pages: int, fanout: int, size: int, extra: tuple[str, ...] = ()) -> bytes:
    """The HTML of page i: title, description, a script, a style, links, and ~size bytes of text.

    Besides its pages it links to `extra` URLs (other hosts, for scope tests), to a fragment and to
    a mailto: address, which a crawler must not turn into pages.
    """
    targets = [path_of(j) for j in links_of(i, pages, fanout)] + list(extra) + ["#top", "mailto:a@b.c"]
    links = "\n".join(f'<li><a href="{t}">Link to {t}</a></li>' for t in targets)
    body = "\n".join(f"<p>{paragraph(i + k, 60)}</p>" for k in range(max(1, size // 500)))
    return (
        f"<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>{title_of(i)}</title>"
        f'<meta name="description" content="Description of page {i}">'
        "<style>body { font-family: sans-serif }</style>"
        "<script>var tracker = 'not text';</script></head>"
        f"<body><h1>{title_of(i)}</h1><nav><ul>{links}</ul></nav><main>{body}</main></body></html>"
    ).encode()


# --- the realistic shape -----------------------------------------------------------------------

_HEAD = (
    '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
    '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
    '<meta http-equiv="X-UA-Compatible" content="IE=edge">\n<title>{title}</title>\n'
    '<meta name="description" content="{description}">\n<meta name="author" content="The test site">\n'
    '<meta property="og:title" content="{title}">\n<meta property="og:type" content="article">\n'
    '<meta property="og:description" content="{description}">\n<meta name="twitter:card" content="summary">\n'
    '<link rel="canonical" href="{path}">\n<link rel="stylesheet" href="/static/site.css?v=3">\n'
    '<link rel="preload" href="/static/font.woff2" as="font" crossorigin>\n'
    '<link rel="icon" type="image/png" href="/static/favicon.png">\n'
    '<link rel="alternate" type="application/rss+xml" href="/feed.xml" title="Feed">\n'
    '<script type="application/ld+json">{{"@context": "https://schema.org", "@type": "Article", '
    '"headline": "{title}", "url": "{path}"}}</script>\n'
    '<script async src="/static/analytics.js"></script>\n'
    "<script>window.dataLayer = window.dataLayer || []; function gtag() {{ dataLayer.push(arguments); }}\n"
    "gtag('js', new Date()); gtag('config', 'tracker-1234', {{ 'anonymize_ip': true }});</script>\n"
    "<style>body {{ margin: 0; font: 16px/1.5 system-ui, sans-serif }} .site-header {{ display: flex }}\n"
    ".content p {{ max-width: 40em }} aside li {{ list-style: none }} footer {{ color: #666 }}</style>\n"
    "</head>\n"
)
_FOOTER_OFFSITE = ("https://www.python.org/", "https://github.com/crawler/crawler")


def render_realistic(i: int, pages: int, fanout: int, size: int, extra: tuple[str, ...] = ()) -> bytes:
    """Page i shaped like a real article page, about `size` bytes, linking to links_of(i) and `extra`."""
    targets = [path_of(j) for j in links_of(i, pages, fanout)] + list(extra)
    nav, rest = targets[:6], targets[6:]
    inline, related = rest[: len(rest) * 2 // 3], rest[len(rest) * 2 // 3 :]
    head = _HEAD.format(title=title_of(i), description=f"Description of page {i}", path=path_of(i))
    parts = [head, _header(nav), _article(i, inline, size - len(head) - 4000), _aside(i, related), _footer()]
    return "".join(parts).encode()


def _header(nav: list[str]) -> str:
    items = "".join(f'<li class="nav-item"><a class="nav-link" href="{t}">{paragraph(len(t), 2).title()}</a></li>'
                    for t in nav)
    return (
        '<body class="article-page">\n<a class="skip" href="#top">Skip to content</a>\n'
        '<header class="site-header"><a class="logo" href="/"><img src="/static/logo.svg" alt="Test site" '
        f'width="120" height="40"></a>\n<nav aria-label="Main"><ul class="nav">{items}</ul></nav>\n'
        '<form role="search" action="/search" method="get"><input type="search" name="q" '
        'placeholder="Search"><button type="submit">Search</button></form></header>\n'
    )


def _article(i: int, inline: list[str], size: int) -> str:
    day = 1 + i % 28
    out = [(f'<main id="top"><article class="post"><h1 class="post-title">{title_of(i)}</h1>\n'
            f'<p class="byline">By <span class="author">{paragraph(i, 2).title()}</span> on '
            f'<time datetime="2024-05-{day:02d}">May {day}, 2024</time></p>\n<div class="content">\n')]
    length, k = 0, 0
    while length < size or k < len(inline):
        piece = _paragraph(i + k, inline[k] if k < len(inline) else None)
        if k % 5 == 4:
            piece = f'<h2 id="s{k}">{paragraph(i + k, 4).capitalize()}</h2>\n' + piece
        out.append(piece)
        length, k = length + len(piece), k + 1
    out.append("</div></article>\n")
    return "".join(out)


def _paragraph(seed: int, link: str | None) -> str:
    """About 600 bytes of prose with some inline markup, and an inline link when `link` is given."""
    anchor = f' <a href="{link}">{paragraph(seed + 3, 3)}</a>' if link else ""
    return (
        f"<p>{paragraph(seed, 24).capitalize()}, <em>{paragraph(seed + 1, 3)}</em> {paragraph(seed + 2, 20)}{anchor}. "
        f"{paragraph(seed + 4, 14).capitalize()} <code>{paragraph(seed + 5, 1)}()</code> and "
        f"<strong>{paragraph(seed + 6, 2)}</strong> {paragraph(seed + 7, 18)}.</p>\n"
    )


def _aside(i: int, related: list[str]) -> str:
    items = "".join(
        f'<li><a href="{t}"><img src="/static/thumb/{k}.jpg" alt="" loading="lazy" width="64" height="64">'
        f"<span>{paragraph(i + k, 4).capitalize()}</span></a></li>\n"
        for k, t in enumerate(related)
    )
    return f'<aside class="related"><h2>Related pages</h2>\n<ul>\n{items}</ul></aside></main>\n'


def _footer() -> str:
    offsite = "".join(f'<li><a href="{u}" rel="noopener">{u.split("/")[2]}</a></li>' for u in _FOOTER_OFFSITE)
    return (
        '<footer class="site-footer"><ul><li><a href="/">Home</a></li>'
        f'<li><a href="mailto:webmaster@example.com">Contact</a></li>{offsite}</ul>\n'
        "<p>&copy; 2024 The test site. All rights reserved.</p></footer>\n"
        "<script>(function () { var s = document.createElement('script'); s.src = '/static/late.js'; "
        "document.body.appendChild(s); })();</script>\n</body>\n</html>\n"
    )


RENDERERS = {"simple": render, "realistic": render_realistic}


class SiteHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: SiteServer

    def do_GET(self) -> None:
        if self.path == HITS_PATH:  # not a page: the request counts so far, itself uncounted
            return self.respond(200, self.server.hits_json(), "application/json")
        if self.path == BYTES_PATH:
            return self.respond(200, str(self.server.body_bytes).encode(), "application/json")
        if self.path == LOG_PATH:
            return self.respond(200, self.server.log_json(), "application/json")
        started = time.monotonic()
        if self.server.latency:
            time.sleep(self.server.latency)
        self.page()
        self.server.logged(self.path, started)

    def page(self) -> None:
        number = self.server.page_number(self.path)
        if self.path == "/robots.txt":
            self.send(200, ROBOTS_TXT, "text/plain")
        elif number is None:
            self.send(404, b"<html><title>Not found</title></html>", "text/html")
        else:
            site = self.server
            html = site.render(number, site.pages, site.fanout, site.size, site.extra)
            etag = f'"{hashlib.sha1(html).hexdigest()[:16]}"'
            fresh = self.headers.get("if-none-match") == etag
            self.send(304 if fresh else 200, b"" if fresh else html, "text/html; charset=utf-8", etag)

    def send(self, status: int, body: bytes, content_type: str, etag: str | None = None) -> None:
        self.server.count(self.path, len(body))
        self.respond(status, body, content_type, etag)

    def respond(self, status: int, body: bytes, content_type: str, etag: str | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        if etag:
            self.send_header("ETag", etag)
            self.send_header("Last-Modified", LAST_MODIFIED)
        if status != 304:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


class SiteServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, pages: int, fanout: int = 10, size: int = 2000, host: str = "127.0.0.1",
                 extra: tuple[str, ...] = (), html: str = "simple", latency: float = 0.0) -> None:
        super().__init__((host, 0), SiteHandler)
        self.pages, self.fanout, self.size, self.extra, self.latency = pages, fanout, size, extra, latency
        self.log: list[tuple[str, float, float]] = []
        self.render = RENDERERS[html]
        self.hits: dict[str, int] = {}
        self.body_bytes = 0
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        host, port = self.socket.getsockname()[:2]
        return f"http://{host}:{port}/"

    def page_number(self, path: str) -> int | None:
        if path == "/":
            return 0
        prefix, _, tail = path.rpartition("/")
        if prefix == "/page" and tail.isdigit() and 0 < int(tail) < self.pages:
            return int(tail)
        return None

    def count(self, path: str, body_bytes: int = 0) -> None:
        with self._lock:
            self.hits[path] = self.hits.get(path, 0) + 1
            self.body_bytes += body_bytes

    def hits_json(self) -> bytes:
        with self._lock:
            return json.dumps(self.hits).encode()

    def logged(self, path: str, started: float) -> None:
        with self._lock:
            self.log.append((path, started, time.monotonic()))

    def log_json(self) -> bytes:
        with self._lock:
            return json.dumps(self.log).encode()


def write_site(directory: str, pages: int, fanout: int, size: int, extra: tuple[str, ...] = (),
               html: str = "realistic") -> None:
    """Write the site as static files: robots.txt, index.html (for /) and page/N (no extension)."""
    root = Path(directory)
    (root / "page").mkdir(parents=True, exist_ok=True)
    (root / "robots.txt").write_bytes(ROBOTS_TXT)
    for i in range(pages):
        name = "index.html" if i == 0 else f"page/{i}"
        (root / name).write_bytes(RENDERERS[html](i, pages, fanout, size, extra))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=1000)
    parser.add_argument("--fanout", type=int, default=10, help="links per page")
    parser.add_argument("--size", type=int, default=2000,
                        help="approximate bytes of text per page (simple), of the whole page (realistic)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--extra", action="append", default=[], help="a URL every page links to")
    parser.add_argument("--html", choices=sorted(RENDERERS), default="simple", help="the shape of the pages")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds each page takes to answer")
    parser.add_argument("--write", metavar="DIR", help="write the site as static files to DIR and exit")
    args = parser.parse_args(argv)
    if args.write:
        write_site(args.write, args.pages, args.fanout, args.size, tuple(args.extra), args.html)
        return
    server = SiteServer(args.pages, args.fanout, args.size, args.host, tuple(args.extra), args.html,
                        args.latency)
    print(server.url, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        sys.exit(0)


if __name__ == "__main__":
    main()
