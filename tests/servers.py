"""Adversarial local HTTP servers for the tests: hangs, trickles, resets, huge and bomb bodies, flaky
statuses, Retry-After, redirect chains and loops, with a request log (path, time, concurrency,
User-Agent) the tests read to count hits.

    with serve() as server:
        fetch(server.url("/trickle"))
        assert len(server.hits("/trickle")) == 1

Each server can `mount` routes of its own (a robots.txt variant, a site's index, a PDF):
`server.mount("/robots.txt", static(b"User-agent: *\nDisallow: /"))` or `server.mount("/", "/hang")`.
Binds 127.0.0.1 (or another loopback address) on port 0 and runs in a daemon thread. Every handler that
waits or drips is bounded: it ends when the client goes away, when the server stops, or after
MAX_HANDLER_SECONDS, so pytest exits cleanly. Responses use HTTP/1.1 keep-alive (connection reuse).
"""

from __future__ import annotations

import functools
import gzip
import select
import socket
import struct
import threading
import time
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import brotli

OK_HTML = b"<!doctype html><html><head><title>ok</title></head><body><a href='/ok'>ok</a></body></html>"
TRICKLE_INTERVAL = 0.3  # seconds between two dripped bytes
HUGE_BYTES = 30 * 1024 * 1024
BOMB_BYTES = 1 << 30  # what /gzip-bomb inflates to
MAX_HANDLER_SECONDS = 30.0  # no handler outlives this
BLOCK = 64 * 1024


@dataclass(frozen=True)
class Hit:
    """One request the server saw."""

    path: str  # with the query
    at: float  # time.monotonic() when it arrived (a new connection's first request: when it was accepted)
    in_flight: int  # requests being handled at that moment, this one included
    port: int  # the client's port: one port = one (reused) connection
    agent: str = ""  # the User-Agent header


class AdversarialServer(ThreadingHTTPServer):
    """The server; `log` lists every request, `max_in_flight` the highest concurrency seen."""

    daemon_threads = True
    request_queue_size = 128  # socketserver's 5 drops SYNs when many clients connect at once

    def __init__(self, host: str = "127.0.0.1") -> None:
        super().__init__((host, 0), _Handler)
        self.host = host
        self.mounted: dict[str, Route] = {}
        self.stopping = threading.Event()
        self.log: list[Hit] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._counts: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._accepted: dict[int, float] = {}  # client port -> accept time, until its first request

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    @property
    def base(self) -> str:
        return f"http://{self.host}:{self.port}"

    def mount(self, path: str, route: Route | str) -> None:
        """Serve `path` (no query; "/x/" also serves every path under it) with `route`, or with the built-in
        route named by a path."""
        self.mounted[path] = _route(self, route) if isinstance(route, str) else route

    def url(self, path: str) -> str:
        return self.base + path

    def hits(self, path: str) -> list[Hit]:
        """The requests for `path` (query included when `path` has one)."""
        with self._lock:
            return [hit for hit in self.log
                    if hit.path == path or ("?" not in path and hit.path.split("?")[0] == path)]

    def reset(self) -> None:
        """Forget the log and the per-route counters (/flaky, /429)."""
        with self._lock:
            self.log.clear()
            self._counts.clear()
            self.max_in_flight = 0

    def count(self, key: str) -> int:
        """How many times `key` was counted, this time included."""
        with self._lock:
            self._counts[key] += 1
            return self._counts[key]

    def process_request(self, request: socket.socket, client_address: Any) -> None:  # type: ignore
        """Note the accept time: a loaded box takes a while to start the handler thread."""
        self._accepted[client_address[1]] = time.monotonic()
        super().process_request(request, client_address)

    def enter(self, path: str, port: int, agent: str = "") -> None:
        with self._lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            at = self._accepted.pop(port, None) or time.monotonic()
            self.log.append(Hit(path, at, self.in_flight, port, agent))

    def leave(self) -> None:
        with self._lock:
            self.in_flight -= 1


@contextmanager
def serve(host: str = "127.0.0.1") -> Iterator[AdversarialServer]:
    """A running AdversarialServer, stopped (and its waiting handlers released) on exit."""
    server = AdversarialServer(host)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.stopping.set()
        server.shutdown()
        server.server_close()
        thread.join(5)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: AdversarialServer

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self.server.enter(self.path, self.client_address[1], self.headers.get("User-Agent", ""))
        try:
            _route(self.server, self.path)(self)
        except OSError:  # the client went away: that is what adversarial clients do
            self.close_connection = True
        finally:
            self.server.leave()


Route = Callable[[_Handler], None]


def _route(server: AdversarialServer, path: str) -> Route:
    bare = urlsplit(path).path
    if bare in server.mounted:
        return server.mounted[bare]
    prefix = "/" + bare.split("/")[1] + "/"
    return server.mounted.get(prefix) or PREFIX_ROUTES.get(prefix) or ROUTES.get(bare) or ROUTES["/404"]


def static(body: bytes = b"", status: int = 200, content_type: str = "text/html; charset=utf-8",
           headers: Iterable[tuple[str, str]] = ()) -> Route:
    """A route answering `status` with `body` (Content-Type `content_type` unless it is "")."""
    extra = list(headers)

    def route(h: _Handler) -> None:
        _send(h, status, body, extra, content_type)

    return route


def redirect(location: str, status: int = 302) -> Route:
    return static(b"", status, headers=[("Location", location)])


# --- helpers ----------------------------------------------------------------------------------------


def _send(h: _Handler, status: int, body: bytes = b"", headers: Iterable[tuple[str, str]] = (),
          content_type: str = "text/html; charset=utf-8") -> None:
    h.send_response(status)
    if content_type:
        h.send_header("Content-Type", content_type)
    h.send_header("Content-Length", str(len(body)))
    for name, value in headers:
        h.send_header(name, value)
    h.end_headers()
    h.wfile.write(body)


def _client_gone(h: _Handler) -> bool:
    """True once the client closed its end (a peek on the raw fd, so a TLS-wrapped socket works too)."""
    try:
        readable, _, _ = select.select([h.connection], [], [], 0)
        return bool(readable) and not socket.socket.recv(h.connection, 1, socket.MSG_PEEK)
    except (OSError, ValueError):
        return True


def _wait(h: _Handler, seconds: float = MAX_HANDLER_SECONDS) -> bool:
    """Sleep up to `seconds` while the client stays and the server runs; True if it lasted."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if h.server.stopping.wait(min(0.05, max(0.0, end - time.monotonic()))) or _client_gone(h):
            return False
    return True


def _drip(h: _Handler, data: Iterable[bytes]) -> None:
    """Write `data` one piece per TRICKLE_INTERVAL until the client leaves or the server stops."""
    h.close_connection = True
    for piece in data:
        h.wfile.write(piece)
        if not _wait(h, TRICKLE_INTERVAL):
            return


def _endless(byte: bytes) -> Iterator[bytes]:
    end = time.monotonic() + MAX_HANDLER_SECONDS
    while time.monotonic() < end:
        yield byte


def _blast(h: _Handler, body: bytes, total: int) -> None:
    """Write `total` bytes taken cyclically from `body`, stopping when the client leaves."""
    sent = 0
    while sent < total and not h.server.stopping.is_set():
        piece = body[: total - sent]
        h.wfile.write(piece)
        sent += len(piece)


# --- routes -----------------------------------------------------------------------------------------


_ok = static(OK_HTML, headers=[("X-Dup", "first"), ("X-Dup", "last")])


def _hang(h: _Handler) -> None:
    h.close_connection = True
    _wait(h)


def _stall(h: _Handler) -> None:
    h.close_connection = True
    h.send_response(200)
    h.send_header("Content-Length", "100")
    h.end_headers()
    _wait(h)


def _trickle(h: _Handler) -> None:
    h.send_response(200)
    h.send_header("Content-Type", "text/plain")
    h.send_header("Connection", "close")
    h.end_headers()
    _drip(h, _endless(b"x"))


def _trickle_headers(h: _Handler) -> None:
    h.wfile.write(b"HTTP/1.1 200 OK\r\nX-Slow: ")
    _drip(h, _endless(b"a"))


def _reset(h: _Handler) -> None:
    h.close_connection = True
    h.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Ty")
    h.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    h.connection.close()  # linger 0: an RST, not a FIN


def _huge(h: _Handler) -> None:
    h.close_connection = True
    h.send_response(200)
    h.send_header("Content-Length", str(HUGE_BYTES))
    h.end_headers()
    _blast(h, bytes(BLOCK), HUGE_BYTES)


def _huge_chunked(h: _Handler) -> None:
    h.close_connection = True
    h.send_response(200)
    h.send_header("Transfer-Encoding", "chunked")
    h.end_headers()
    chunk = b"%x\r\n" % BLOCK + bytes(BLOCK) + b"\r\n"
    _blast(h, chunk, HUGE_BYTES // BLOCK * len(chunk))
    h.wfile.write(b"0\r\n\r\n")


def _gzip_bomb(h: _Handler) -> None:
    body = gzip_bomb()
    h.close_connection = True
    h.send_response(200)
    h.send_header("Content-Encoding", "gzip")
    h.send_header("Content-Length", str(len(body)))
    h.end_headers()
    h.wfile.write(body)


def _flaky(h: _Handler) -> None:
    """503 for the first ?fails= requests (2 by default) of this exact path and query, then /ok."""
    if h.server.count(h.path) <= int(_query(h, "fails") or "2"):
        _send(h, 503, b"<p>try later</p>")
    else:
        _ok(h)


def _too_many(h: _Handler) -> None:
    """429 with Retry-After: ?after= seconds (1 by default) the first time, then /ok."""
    if h.server.count("429") <= 1:
        _send(h, 429, b"<p>slow down</p>", [("Retry-After", _query(h, "after") or "1")])
    else:
        _ok(h)


def _unavailable_until(h: _Handler) -> None:
    """503 with Retry-After as an HTTP-date ?seconds= from now."""
    seconds = float(_query(h, "seconds") or "5")
    _send(h, 503, b"<p>later</p>", [("Retry-After", formatdate(time.time() + seconds, usegmt=True))])


def _redirect_chain(h: _Handler) -> None:
    left = int(urlsplit(h.path).path.rsplit("/", 1)[1] or "0")
    _send(h, 302, b"", [("Location", f"/redirect/{left - 1}" if left > 1 else "/ok")])


def _redirect_to(h: _Handler) -> None:
    _send(h, 302, b"", [("Location", _query(h, "url") or "/ok")])


def _encoded(h: _Handler) -> None:
    encoding = urlsplit(h.path).path.rsplit("/", 1)[1]
    _send(h, 200, ENCODERS[encoding](OK_HTML), [("Content-Encoding", encoding)])


def _sleep(h: _Handler) -> None:
    """/sleep/<ms>: answer /ok's page after that many milliseconds."""
    if _wait(h, int(urlsplit(h.path).path.rsplit("/", 1)[1]) / 1000):
        _ok(h)


def _status(h: _Handler) -> None:
    """/status/<code>: that status, always."""
    code = int(urlsplit(h.path).path.rsplit("/", 1)[1])
    _send(h, code, b"<p>status %d</p>" % code)


def _query(h: _Handler, name: str) -> str | None:
    values = parse_qs(urlsplit(h.path).query).get(name)
    return values[0] if values else None


ENCODERS: dict[str, Callable[[bytes], bytes]] = {"gzip": gzip.compress, "deflate": zlib.compress,
                                                  "br": brotli.compress}

PREFIX_ROUTES: dict[str, Route] = {"/redirect/": _redirect_chain, "/encoded/": _encoded, "/sleep/": _sleep,
                                   "/status/": _status}

ROUTES: dict[str, Route] = {
    "/ok": _ok,
    "/404": static(b"<p>not found</p>", 404),
    "/always-500": static(b"<p>broken</p>", 500),
    "/hang": _hang,
    "/stall": _stall,
    "/trickle": _trickle,
    "/trickle-headers": _trickle_headers,
    "/reset": _reset,
    "/huge": _huge,
    "/huge-chunked": _huge_chunked,
    "/gzip-bomb": _gzip_bomb,
    "/flaky": _flaky,
    "/429": _too_many,
    "/503-date": _unavailable_until,
    "/loop-a": redirect("/loop-b"),
    "/loop-b": redirect("/loop-a", 301),
    "/redirect-to": _redirect_to,
}


@functools.cache
def gzip_bomb() -> bytes:
    """About 1 MB of gzip inflating to BOMB_BYTES of zeros, built in ~0.5 s: after a full flush the
    deflate state resets, so every 1 MiB block of zeros compresses to the same bytes and is repeated."""
    block = bytes(1 << 20)
    deflate = zlib.compressobj(9, zlib.DEFLATED, -15)
    piece = deflate.compress(block) + deflate.flush(zlib.Z_FULL_FLUSH)
    crc = 0
    for _ in range(BOMB_BYTES // len(block)):
        crc = zlib.crc32(block, crc)
    stream = piece * (BOMB_BYTES // len(block)) + deflate.flush()
    header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"
    return header + stream + struct.pack("<II", crc, BOMB_BYTES & 0xFFFFFFFF)
