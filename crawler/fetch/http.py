"""One HTTP fetch: deadline, byte cap, decompression, retries and redirect hops (RFC 9110, GET only).

`fetch_one` is the blocking call both engines make; it never raises for network or HTTP trouble, the
failure is in `Response.error` ("timeout", "connection error: ...", "too large: ...", ...).

The deadline covers connect + headers + body of one attempt. Socket timeouts alone cannot enforce it (a
server trickling one byte per recv never trips them), so each attempt also has a watchdog:
  * under gevent (socket monkey-patched) a `gevent.Timeout` around the attempt;
  * otherwise a shared daemon "reaper" thread that `shutdown()`s the socket of an attempt past its
    deadline; the socket is found through the connection classes that `make_session` mounts, which
    attach themselves to the current attempt (a ContextVar) and detach when returned to the pool.
    Not covered there: DNS resolution and a TLS handshake, bounded only by the connect timeout per recv.
"""

from __future__ import annotations

import contextlib
import contextvars
import heapq
import http.client
import itertools
import os
import random
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from email.utils import parsedate_to_datetime
from typing import Any, NamedTuple
from urllib.parse import urljoin, urlsplit

import requests
import urllib3
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from crawler.records import Response
from crawler.settings import Limits
from crawler.urls import InvalidURL, normalize

CHUNK = 64 * 1024  # decoded bytes per read: the most a decoder may produce at once
REDIRECTS = frozenset({301, 302, 303, 307, 308})
RETRY_ERRORS = frozenset({"timeout", "connection error"})

# br only when urllib3 can decode it (it imported brotli or brotlicffi)
ACCEPT_ENCODING = "gzip, deflate, br" if "br" in urllib3.util.request.ACCEPT_ENCODING else "gzip, deflate"


class _Expired(Exception):
    """The attempt's watchdog fired: its deadline passed."""


class _Watch:
    """One attempt's watchdog state: the connection in use, its socket, and whether the deadline fired.

    The socket is kept apart from the connection: on "Connection: close" http.client drops `conn.sock`
    while the response goes on reading from the same socket.
    """

    def __init__(self) -> None:
        self.fired = False
        self._conn: HTTPConnection | None = None
        self._sock: socket.socket | None = None
        self._done = False
        self._lock = threading.Lock()  # held only around non-blocking code: safe under gevent too

    def attach(self, conn: HTTPConnection) -> None:
        with self._lock:
            if not self._done:
                self._conn, self._sock = conn, conn.sock or self._sock
                if self.fired:
                    _shutdown(self._sock)

    def detach(self, conn: HTTPConnection) -> None:
        with self._lock:
            if self._conn is conn:
                self._conn = self._sock = None

    def fire(self) -> None:
        with self._lock:
            if not self._done:
                self.fired = True
                _shutdown(self._sock)

    def close(self) -> None:
        with self._lock:
            self._done, self._conn, self._sock = True, None, None


def _shutdown(sock: socket.socket | None) -> None:
    """Wake any recv blocked on `sock` (the raw fd: an SSL wrapper's state is left alone)."""
    if sock is not None:
        with contextlib.suppress(OSError):
            socket.socket.shutdown(sock, socket.SHUT_RDWR)


class _Reaper:
    """A daemon thread firing the watches whose deadline passed (the thread engine's watchdog)."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, _Watch]] = []
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None

    def forget(self) -> None:
        """In a forked child the thread is gone (and the lock may be held): start afresh."""
        self._heap, self._cond, self._thread = [], threading.Condition(), None

    def arm(self, watch: _Watch, seconds: float) -> None:
        with self._cond:
            heapq.heappush(self._heap, (time.monotonic() + seconds, next(self._seq), watch))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="fetch-reaper", daemon=True)
                self._thread.start()
            self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._heap or self._heap[0][0] > time.monotonic():
                    self._cond.wait(self._heap[0][0] - time.monotonic() if self._heap else None)
                watch = heapq.heappop(self._heap)[2]
            watch.fire()


_REAPER = _Reaper()
os.register_at_fork(after_in_child=_REAPER.forget)
_CURRENT: contextvars.ContextVar[_Watch | None] = contextvars.ContextVar("fetch_watch", default=None)


def _green() -> bool:
    """True when gevent has patched the socket module (checked without importing gevent)."""
    monkey = sys.modules.get("gevent.monkey")
    return monkey is not None and bool(monkey.is_module_patched("socket"))


@contextlib.contextmanager
def _watchdog(seconds: float) -> Iterator[_Watch]:
    """Bound the enclosed attempt to `seconds`; an overrun surfaces as `_Expired` or a dead socket."""
    watch = _Watch()
    if _green():
        from gevent import Timeout

        with Timeout(seconds) as timer:
            try:
                yield watch
            except Timeout as exc:
                if exc is not timer:
                    raise
                raise _Expired() from None
        return
    token = _CURRENT.set(watch)
    _REAPER.arm(watch, seconds)
    try:
        yield watch
    finally:
        watch.close()
        _CURRENT.reset(token)


class _Watched:
    """Mixin for urllib3 connections: attach to the current attempt's watch while in use."""

    sock: Any

    def connect(self) -> None:
        super().connect()  # type: ignore[misc]
        self._attach()

    def request(self, *args: Any, **kwargs: Any) -> None:
        self._attach()
        super().request(*args, **kwargs)  # type: ignore[misc]

    def _attach(self) -> None:
        watch = _CURRENT.get()
        self._crawler_watch = watch
        if watch is not None:
            watch.attach(self)  # type: ignore[arg-type]


class _WatchedHTTPConnection(_Watched, HTTPConnection):
    pass


class _WatchedHTTPSConnection(_Watched, HTTPSConnection):
    pass


class _Detaching:
    """Mixin for urllib3 pools: a connection back in the pool no longer belongs to an attempt."""

    def _put_conn(self, conn: Any) -> None:
        watch = getattr(conn, "_crawler_watch", None)
        if watch is not None:
            watch.detach(conn)
        super()._put_conn(conn)  # type: ignore[misc]


class _WatchedHTTPPool(_Detaching, HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _WatchedHTTPSPool(_Detaching, HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


class _WatchedAdapter(HTTPAdapter):
    """An HTTPAdapter whose pools make watched connections."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _WatchedHTTPPool, "https": _WatchedHTTPSPool}


def make_session(pool_size: int, user_agent: str) -> requests.Session:
    """A session for `fetch_one`: no proxy env, `pool_size` kept connections per host, no own retries."""
    session = requests.Session()
    session.trust_env = False
    adapter = _WatchedAdapter(pool_connections=pool_size, pool_maxsize=pool_size, max_retries=0)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.headers.update({"User-Agent": user_agent, "Accept-Encoding": ACCEPT_ENCODING})
    return session


# requests' exceptions are OSErrors; anything else (ValueError, TypeError...) is a bug and raises
_FAILURES = (_Expired, OSError, urllib3.exceptions.HTTPError, http.client.HTTPException)


def _attempt(session: requests.Session, url: str, limits: Limits, clock: Callable[[], float]) -> Response:
    """One GET of `url` within `limits.timeout`, body read and capped; failures become `error`.

    The status and headers are kept when the body then fails (e.g. a trickle: 200 + "timeout").
    """
    deadline = clock() + limits.timeout
    result = Response(url=url, final_url=url)
    try:
        with _watchdog(limits.timeout) as watch:
            _exchange(session, result, limits, lambda: watch.fired or clock() >= deadline, deadline - clock())
    except _FAILURES as exc:
        expired = isinstance(exc, _Expired) or watch.fired or clock() >= deadline
        result.body, result.error = b"", "timeout" if expired else _describe(exc)
    return result


def _exchange(
    session: requests.Session, result: Response, limits: Limits, expired: Callable[[], bool], left: float
) -> None:
    """Fill `result` from one request/response exchange."""
    left = max(left, 0.001)
    with session.get(result.url, stream=True, allow_redirects=False, timeout=(left, left)) as resp:
        if expired():  # headers cut short by the watchdog are no response
            raise _Expired()
        result.status, result.headers = resp.status_code, _headers(resp.raw)
        result.body, result.error = _read_body(resp.raw, limits.max_bytes, expired)


def _headers(raw: urllib3.BaseHTTPResponse) -> dict[str, str]:
    return {name.lower(): value for name, value in raw.headers.items()}


def _read_body(
    raw: urllib3.BaseHTTPResponse, max_bytes: int, expired: Callable[[], bool]
) -> tuple[bytes, str | None]:
    """The decoded body, read chunk by chunk; (b"", "too large: ...") past `max_bytes`."""
    too_large = f"too large: more than {max_bytes} bytes"
    if _declared_length(raw) > max_bytes:
        return b"", too_large
    chunks, total = [], 0
    for chunk in raw.stream(CHUNK, decode_content=True):
        total += len(chunk)
        if total > max_bytes:
            return b"", too_large
        if expired():
            raise _Expired()
        chunks.append(chunk)
    if expired():  # the reaper's shutdown looks like a clean end to a read-until-close body
        raise _Expired()
    return b"".join(chunks), None


def _declared_length(raw: urllib3.BaseHTTPResponse) -> int:
    """Content-Length when it counts decoded bytes (no Content-Encoding), else 0."""
    if raw.headers.get("content-encoding", "identity").strip().lower() not in ("", "identity"):
        return 0
    value = raw.headers.get("content-length", "")
    return int(value) if value.isdigit() else 0


_KINDS: tuple[tuple[tuple[type[BaseException], ...], str], ...] = (
    ((requests.exceptions.SSLError, urllib3.exceptions.SSLError), "ssl"),
    ((requests.exceptions.ContentDecodingError, urllib3.exceptions.DecodeError), "decode error"),
    ((requests.exceptions.InvalidURL, requests.exceptions.InvalidSchema), "invalid url"),
    ((requests.exceptions.MissingSchema, urllib3.exceptions.LocationValueError), "invalid url"),
)


def _describe(exc: BaseException) -> str:
    """A one-line error whose first word(s) before ':' name the kind."""
    if isinstance(exc, requests.exceptions.Timeout | urllib3.exceptions.TimeoutError):
        return "timeout"
    kind = next((kind for types, kind in _KINDS if isinstance(exc, types)), "connection error")
    return f"{kind}: {_reason(exc)}"


def _reason(exc: BaseException) -> str:
    """The innermost cause's message, short and on one line (e.g. "Connection refused")."""
    for _ in range(10):
        inner = getattr(exc, "reason", None)
        if not isinstance(inner, BaseException):
            inner = exc.__cause__ or exc.__context__
        if inner is None:
            break
        exc = inner
    text = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc) or type(exc).__name__
    return " ".join(text.split())[:120]


def _retryable(resp: Response) -> bool:
    if resp.error is not None:
        return resp.error.split(":")[0] in RETRY_ERRORS
    return resp.status is not None and (resp.status == 429 or resp.status >= 500)


def _pause(resp: Response, attempt: int, limits: Limits, wall: Callable[[], float]) -> float:
    """Seconds to wait before the next attempt: Retry-After on 429/503 if given, else backoff + jitter."""
    if resp.status in (429, 503):
        after = _retry_after(resp.headers.get("retry-after", ""), wall)
        if after is not None:
            return min(after, limits.max_retry_after)
    base = limits.backoff * 2**attempt
    return base + random.uniform(0, base)


def _retry_after(value: str, wall: Callable[[], float]) -> float | None:
    """Retry-After as seconds from now: delta-seconds or an HTTP-date (RFC 9110 10.2.3)."""
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - wall())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def _with_retries(session: requests.Session, url: str, limits: Limits, clocks: _Clocks) -> Response:
    attempt = 0
    while True:
        resp = _attempt(session, url, limits, clocks.clock)
        if attempt >= limits.retries or not _retryable(resp):
            return resp
        clocks.sleep(_pause(resp, attempt, limits, clocks.wall))
        attempt += 1


def _target(resp: Response) -> str | None:
    """The normalized URL a redirect points at; None if `resp` is no redirect. Raises InvalidURL."""
    location = resp.headers.get("location")
    if resp.error is not None or resp.status not in REDIRECTS or not location:
        return None
    return normalize(urljoin(resp.final_url, location.strip()))


def _hops(
    session: requests.Session, url: str, limits: Limits, follow: Callable[[str], bool], clocks: _Clocks
) -> Response:
    """Fetch `url` and follow the redirects `follow` accepts, up to `limits.max_redirects` hops."""
    seen, current = {url}, url
    for hop in itertools.count():
        resp = _with_retries(session, current, limits, clocks)
        try:
            target = _target(resp)
        except InvalidURL as exc:
            return _failed(resp, f"invalid url: redirect to {' '.join(str(exc).split())[:120]}")
        if target is None:
            return resp
        if target in seen:
            return _failed(resp, f"redirect loop: {target}")
        if not follow(target):
            resp.final_url = target
            return resp
        if hop >= limits.max_redirects:
            return _failed(resp, f"too many redirects: more than {limits.max_redirects}")
        seen.add(target)
        current = target
    raise AssertionError("unreachable")  # pragma: no cover


def _failed(resp: Response, error: str) -> Response:
    resp.error, resp.body = error, b""
    return resp


class _Clocks(NamedTuple):
    """The injected time sources of one fetch."""

    clock: Callable[[], float]
    sleep: Callable[[float], None]
    wall: Callable[[], float]


def _invalid(url: str) -> str | None:
    """Why `url` cannot be fetched before any request, or None."""
    try:
        scheme = urlsplit(url).scheme.lower()
    except ValueError as exc:
        return str(exc)
    return None if scheme in ("http", "https") else "not http(s)"


def _sleep(seconds: float) -> None:
    time.sleep(seconds)  # looked up per call, so gevent's patched sleep is used when patched later


def fetch_one(
    session: requests.Session,
    url: str,
    limits: Limits,
    *,
    follow: Callable[[str], bool] = lambda u: False,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = _sleep,
    wall: Callable[[], float] = time.time,
) -> Response:
    """GET `url` with retries and the redirect hops `follow` accepts; never raises for network trouble."""
    started, fetched_at = clock(), wall()
    invalid = _invalid(url)
    if invalid:
        resp = Response(url=url, final_url=url, error=f"invalid url: {invalid}")
    else:
        resp = _hops(session, url, limits, follow, _Clocks(clock, sleep, wall))
    resp.url, resp.fetched_at = url, fetched_at
    resp.elapsed_ms = int((clock() - started) * 1000)
    return resp
