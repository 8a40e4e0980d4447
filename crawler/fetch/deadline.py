"""Deadline: the watchdog that bounds one fetch attempt (connect + headers + body) to a number of seconds.

Socket timeouts alone cannot enforce a whole-response deadline (a server trickling one byte per recv never
trips them), so each attempt runs inside `watchdog(seconds)`:
  * under gevent (socket monkey-patched) a `gevent.Timeout` around the attempt, raised as `Expired`;
  * otherwise a shared daemon "reaper" thread that `shutdown()`s the socket of an attempt past its
    deadline; the socket is found through the connection classes that `WatchedAdapter` mounts, which
    attach themselves to the current attempt (a ContextVar) and detach when returned to the pool.
    Not covered there: DNS resolution and a TLS handshake, bounded only by the connect timeout per recv.
The same connections check their peer address against the address guard being enforced (crawler.fetch.guard).
The caller checks `Watch.fired` (or its own clock) after the attempt: a shut-down socket can look like a
clean end of a read-until-close body.
"""

from __future__ import annotations

import contextlib
import contextvars
import heapq
import itertools
import os
import socket
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from crawler.fetch.guard import PeerChecked


class Expired(Exception):
    """The attempt's watchdog fired: its deadline passed."""


class Watch:
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


class Reaper:
    """A daemon thread firing the watches whose deadline passed (the thread engine's watchdog)."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Watch]] = []
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self.thread: threading.Thread | None = None

    def forget(self) -> None:
        """In a forked child the thread is gone (and the lock may be held): start afresh."""
        self._heap, self._cond, self.thread = [], threading.Condition(), None

    def arm(self, watch: Watch, seconds: float) -> None:
        with self._cond:
            heapq.heappush(self._heap, (time.monotonic() + seconds, next(self._seq), watch))
            if self.thread is None:
                self.thread = threading.Thread(target=self._run, name="fetch-reaper", daemon=True)
                self.thread.start()
            self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._heap or self._heap[0][0] > time.monotonic():
                    self._cond.wait(self._heap[0][0] - time.monotonic() if self._heap else None)
                watch = heapq.heappop(self._heap)[2]
            watch.fire()


REAPER = Reaper()
os.register_at_fork(after_in_child=REAPER.forget)
_CURRENT: contextvars.ContextVar[Watch | None] = contextvars.ContextVar("fetch_watch", default=None)


def green() -> bool:
    """True when gevent has patched the socket module (checked without importing gevent)."""
    monkey = sys.modules.get("gevent.monkey")
    return monkey is not None and bool(monkey.is_module_patched("socket"))


@contextlib.contextmanager
def watchdog(seconds: float) -> Iterator[Watch]:
    """Bound the enclosed attempt to `seconds`; an overrun surfaces as `Expired` or a dead socket."""
    watch = Watch()
    if green():
        from gevent import Timeout

        with Timeout(seconds) as timer:
            try:
                yield watch
            except Timeout as exc:
                if exc is not timer:
                    raise
                raise Expired() from None
        return
    token = _CURRENT.set(watch)
    REAPER.arm(watch, seconds)
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


class _WatchedHTTPConnection(_Watched, PeerChecked, HTTPConnection):
    pass


class _WatchedHTTPSConnection(_Watched, PeerChecked, HTTPSConnection):
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


class WatchedAdapter(HTTPAdapter):
    """An HTTPAdapter whose pools make watched connections (what the reaper needs to find sockets), which
    also check their peer address (crawler.fetch.guard.PeerChecked)."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _WatchedHTTPPool, "https": _WatchedHTTPSPool}

    def proxy_manager_for(self, proxy: str, **kwargs: Any) -> Any:
        """The same watched pools behind an http(s) proxy (--proxy); a SOCKS proxy keeps its own."""
        manager = super().proxy_manager_for(proxy, **kwargs)
        if not proxy.lower().startswith("socks"):
            manager.pool_classes_by_scheme = {"http": _WatchedHTTPPool, "https": _WatchedHTTPSPool}
        return manager
