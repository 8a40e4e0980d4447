"""One HTTP fetch: deadline, byte cap, decompression, retries and redirect hops (RFC 9110, GET only).

`fetch_one` is the blocking call both engines make; it never raises for network or HTTP trouble, the
failure is in `Response.error` ("timeout", "connection error: ...", "too large: ...", ...).

The deadline covers connect + headers + body of one attempt; crawler.fetch.deadline owns the watchdog
that enforces it (a gevent.Timeout, or a reaper thread that shuts the socket down). The byte cap counts
decoded bytes while urllib3 inflates the body chunk by chunk, so a gzip bomb is never held whole.
Given a guard, every connection the fetch opens is held to its rule (crawler.fetch.guard: "blocked: ...").
"""

from __future__ import annotations

import http.client
import itertools
import random
import socket
import time
from collections.abc import Callable, Iterator, Mapping
from email.utils import parsedate_to_datetime
from typing import NamedTuple
from urllib.parse import urljoin, urlsplit

import requests
import urllib3

from crawler.fetch.client import CrawlSession
from crawler.fetch.deadline import Expired, watchdog
from crawler.fetch.guard import AddressGuard, Blocked, enforcing
from crawler.records import Response
from crawler.settings import Limits
from crawler.urls import InvalidURL, normalize

CHUNK = 64 * 1024  # decoded bytes per read: the most a decoder may produce at once
REDIRECTS = frozenset({301, 302, 303, 307, 308})
RETRY_ERRORS = frozenset({"timeout", "connection error"})

# A WARC tap (crawler.warc.Recorder.tap): given a response before its body is read, keeps its bytes and
# returns what records the exchange, called with why the body was cut ("length", "time", ...) or None.
Tap = Callable[[requests.Response], Callable[[str | None], None]]

# requests' exceptions are OSErrors; anything else (ValueError, TypeError...) is a bug and raises
_FAILURES = (Expired, Blocked, OSError, urllib3.exceptions.HTTPError, http.client.HTTPException)


Headers = Mapping[str, str] | None  # extra request headers (a recrawl's validators)


def _attempt(
    session: CrawlSession, url: str, limits: Limits, clock: Callable[[], float], tap: Tap | None = None,
    headers: Headers = None,
) -> Response:
    """One GET of `url` within `limits.timeout`, body read and capped; failures become `error`.

    The status and headers are kept when the body then fails (e.g. a trickle: 200 + "timeout").
    """
    deadline = clock() + limits.timeout
    result = Response(url=url, final_url=url)
    try:
        with watchdog(limits.timeout) as watch:
            _exchange(session, result, limits, lambda: watch.fired or clock() >= deadline, deadline - clock(),
                      tap, headers)
    except _FAILURES as exc:
        expired = isinstance(exc, Expired) or watch.fired or clock() >= deadline
        result.body, result.error = b"", "timeout" if expired else _describe(exc)
    return result


def _exchange(
    session: CrawlSession, result: Response, limits: Limits, expired: Callable[[], bool], left: float,
    tap: Tap | None = None,
    headers: Headers = None,
) -> None:
    """Fill `result` from one request/response exchange (recorded by `tap`, if given)."""
    left = max(left, 0.001)
    timeout = (left, left)
    cookies = session.host_cookies
    cookie = cookies.header(result.url) if cookies is not None else None
    if cookie:  # after a --header Cookie's, if one was given
        given = session.headers.get("Cookie")
        headers = {**(headers or {}), "Cookie": f"{given!s}; {cookie}" if given else cookie}
    with session.open(result.url, headers, timeout) as resp:
        if expired():  # headers cut short by the watchdog are no response
            raise Expired()
        if cookies is not None:
            cookies.keep(resp)
        finish = tap(resp) if tap is not None else None
        result.status, result.headers = resp.status_code, _headers(resp.raw)
        try:
            result.body, result.error = _read_body(resp.raw, limits.max_bytes, expired, limits.truncate)
        except BaseException:
            if finish is not None:
                finish("time" if expired() else "disconnect")
            raise
        if finish is not None:
            finish(_cut(result, limits))


def _cut(result: Response, limits: Limits) -> str | None:
    """"length" when the byte cap cut the body (or kept it from being read), else None."""
    capped = (result.error or "").startswith("too large") or (limits.truncate and len(result.body) >= limits.max_bytes)
    return "length" if capped else None


def _headers(raw: urllib3.BaseHTTPResponse) -> dict[str, str]:
    return {name.lower(): value for name, value in raw.headers.items()}


def _read_body(
    raw: urllib3.BaseHTTPResponse, max_bytes: int, expired: Callable[[], bool], truncate: bool
) -> tuple[bytes, str | None]:
    """The decoded body, read chunk by chunk. Past `max_bytes`: (b"", "too large: ..."), or with
    `truncate` its first `max_bytes` bytes, the rest never read."""
    too_large = f"too large: more than {max_bytes} bytes"
    if _declared_length(raw) > max_bytes and not truncate:
        return b"", too_large
    chunks, total = [], 0
    for chunk in raw.stream(CHUNK, decode_content=True):
        if expired():
            raise Expired()
        chunks.append(chunk)
        total += len(chunk)
        if total > max_bytes:
            return (b"".join(chunks)[:max_bytes], None) if truncate else (b"", too_large)
    if expired():  # the reaper's shutdown looks like a clean end to a read-until-close body
        raise Expired()
    return b"".join(chunks), None


def _declared_length(raw: urllib3.BaseHTTPResponse) -> int:
    """Content-Length when it counts decoded bytes (no Content-Encoding), else 0."""
    if raw.headers.get("content-encoding", "identity").strip().lower() not in ("", "identity"):
        return 0
    value = raw.headers.get("content-length", "")
    return int(value) if value.isdigit() else 0


_KINDS: tuple[tuple[tuple[type[BaseException], ...], str], ...] = (
    ((urllib3.exceptions.NameResolutionError, socket.gaierror), "dns"),
    ((requests.exceptions.SSLError, urllib3.exceptions.SSLError), "ssl"),
    ((requests.exceptions.ContentDecodingError, urllib3.exceptions.DecodeError), "decode error"),
    ((requests.exceptions.InvalidURL, requests.exceptions.InvalidSchema), "invalid url"),
    ((requests.exceptions.MissingSchema, urllib3.exceptions.LocationValueError), "invalid url"),
)


def _describe(exc: BaseException) -> str:
    """A one-line error whose first word(s) before ':' name the kind."""
    if isinstance(exc, Blocked):
        return str(exc)
    if isinstance(exc, requests.exceptions.Timeout | urllib3.exceptions.TimeoutError):
        return "timeout"
    causes = list(_chain(exc))
    kind = next((kind for types, kind in _KINDS if any(isinstance(e, types) for e in causes)), "connection error")
    return f"{kind}: {_reason(exc)}"


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """`exc` and what it wraps (urllib3's `reason`, then causes), innermost last; at most 10 deep."""
    for _ in range(10):
        yield exc
        inner = getattr(exc, "reason", None)
        if not isinstance(inner, BaseException):
            inner = exc.__cause__ or exc.__context__
        if inner is None:
            return
        exc = inner


def _reason(exc: BaseException) -> str:
    """The innermost cause's message, short and on one line (e.g. "Connection refused")."""
    *_, exc = _chain(exc)
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


def _with_retries(
    session: CrawlSession, url: str, limits: Limits, clocks: _Clocks, tap: Tap | None,
    headers: Headers = None,
) -> Response:
    attempt = 0
    while True:
        resp = _attempt(session, url, limits, clocks.clock, tap, headers)
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
    session: CrawlSession, url: str, limits: Limits, follow: Callable[[str], bool], clocks: _Clocks,
    tap: Tap | None = None,
    headers: Headers = None,
) -> Response:
    """Fetch `url` and follow the redirects `follow` accepts, up to `limits.max_redirects` hops; `headers`
    go with the request for `url` only (validators are about that URL)."""
    seen, current = {url}, url
    for hop in itertools.count():
        resp = _with_retries(session, current, limits, clocks, tap, headers if current == url else None)
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
    session: CrawlSession,
    url: str,
    limits: Limits,
    *,
    follow: Callable[[str], bool] = lambda u: False,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = _sleep,
    wall: Callable[[], float] = time.time,
    tap: Tap | None = None,
    headers: Headers = None,
    guard: AddressGuard | None = None,
) -> Response:
    """GET `url` (with `headers`) with retries and the redirect hops `follow` accepts; never raises for
    network trouble. A 304 to a conditional GET is an answer like any other (status 304, no body). With
    `tap`, every exchange (each attempt and hop) is recorded as it happens (crawler.warc). With `guard`,
    a connection whose peer address the guard forbids fails the attempt with its "blocked: ..." reason."""
    started, fetched_at = clock(), wall()
    invalid = _invalid(url)
    if invalid:
        resp = Response(url=url, final_url=url, error=f"invalid url: {invalid}")
    else:
        with enforcing(guard):
            resp = _hops(session, url, limits, follow, _Clocks(clock, sleep, wall), tap, headers)
    resp.url, resp.fetched_at = url, fetched_at
    resp.elapsed_ms = int((clock() - started) * 1000)
    return resp
