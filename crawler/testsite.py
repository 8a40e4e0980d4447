"""A synthetic site: N generated, interlinked HTML pages served on 127.0.0.1 (for tests and `crawl bench`).

`python -m crawler.testsite --pages 1000` binds port 0 and prints its base URL on the first line of
stdout. Page 0 is `/`, page i is `/page/i`; every page is reachable from `/`. Pages are generated on
request from a fixed word list, so a 50k-page site costs no memory. The link graph is a pure function
(`links_of`), so tests can compute what a crawl must find (`reachable`).
"""

from __future__ import annotations

import argparse
import sys
import threading
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

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


class SiteHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: SiteServer

    def do_GET(self) -> None:
        number = self.server.page_number(self.path)
        if self.path == "/robots.txt":
            self.send(200, b"User-agent: *\nDisallow:\n", "text/plain")
        elif number is None:
            self.send(404, b"<html><title>Not found</title></html>", "text/html")
        else:
            site = self.server
            html = render(number, site.pages, site.fanout, site.size, site.extra)
            self.send(200, html, "text/html; charset=utf-8")

    def send(self, status: int, body: bytes, content_type: str) -> None:
        self.server.count(self.path)
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


class SiteServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, pages: int, fanout: int = 10, size: int = 2000, host: str = "127.0.0.1",
                 extra: tuple[str, ...] = ()) -> None:
        super().__init__((host, 0), SiteHandler)
        self.pages, self.fanout, self.size, self.extra = pages, fanout, size, extra
        self.hits: dict[str, int] = {}
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}/"

    def page_number(self, path: str) -> int | None:
        if path == "/":
            return 0
        prefix, _, tail = path.rpartition("/")
        if prefix == "/page" and tail.isdigit() and 0 < int(tail) < self.pages:
            return int(tail)
        return None

    def count(self, path: str) -> None:
        with self._lock:
            self.hits[path] = self.hits.get(path, 0) + 1


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=1000)
    parser.add_argument("--fanout", type=int, default=10, help="links per page")
    parser.add_argument("--size", type=int, default=2000, help="approximate bytes of text per page")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--extra", action="append", default=[], help="a URL every page links to")
    args = parser.parse_args(argv)
    server = SiteServer(args.pages, args.fanout, args.size, args.host, tuple(args.extra))
    print(server.url, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        sys.exit(0)


if __name__ == "__main__":
    main()
