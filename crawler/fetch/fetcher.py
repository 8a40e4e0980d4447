"""A fetch process: one of the extraction processes, fetching its own pages (see crawler.fetch.processes).

It runs a gevent hub of its own, a greenlet per page the crawl process hands it: the fetch (the same
`fetch_one`, its deadline, byte cap and address guard), then the extraction, on a thread beside the
hub (so a page that takes seconds to parse does not stall the fetches in flight), within the parse time
limit. Only what the store
keeps goes back, never the body. What needs the crawl's state stays there: whether a redirect hop is
followed in place is asked of the crawl process, hop by hop.

Messages are tuples on one duplex pipe. From the crawl process:
  ("get", id, url, headers, named_sitemap)  fetch and extract a page
  ("robots", id, url)                      fetch a robots.txt (its hops: the guard's rule alone)
  ("hop", id, allowed)                     the answer to a hop question
  ("guard", trusted, allow_private)        the address guard's rule (again after a seed's redirect)
  ("cookies", url, values)                 Set-Cookie values another fetch process received
and back: ("hop", id, url), ("ended", id, status, elapsed_ms) (the request is over: the host's slot is
free), ("done", id, response, page), ("failed", id, error) and ("cookies", url, values).

The process starts with nothing imported but this module: it monkey-patches first, then loads the rest
(its arguments come pickled as bytes, unpickled after the patch, since they import requests and ssl).
"""

from __future__ import annotations

import os
import pickle
import threading
from collections import deque
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from crawler.records import Page, Response
    from crawler.settings import Limits

EXTRACTORS = 1  # threads extracting (one more costs ~20 MiB of malloc arena, and gains nothing under the GIL)
HOP_WAIT = 60.0  # seconds a hop question waits for its answer (the crawl process is gone or stuck)


def main(conn: Connection, setup: bytes) -> None:
    """The process's life: patch, build the session, serve the pipe until the crawl process goes."""
    from crawler.extract.pool import die_with_parent

    die_with_parent()
    from gevent import monkey

    monkey.patch_all(thread=False, queue=False)
    client, limits, robots_limits, concurrency = pickle.loads(setup)
    Fetcher(conn, client, limits, robots_limits, concurrency).serve()


class Fetcher:
    def __init__(self, conn: Connection, client: Any, limits: Limits, robots_limits: Limits, concurrency: int) -> None:
        import gevent
        import gevent.event
        import gevent.threadpool

        import crawler.extract.html  # noqa: F401 (loaded now, not when the first page arrives)
        from crawler.fetch.client import HostCookies, make_session, quiet_if_insecure
        from crawler.fetch.guard import AddressGuard

        self.conn, self.limits, self.robots_limits = conn, limits, robots_limits
        quiet_if_insecure(client)
        self.cookies = HostCookies(relay=self._relay) if client.cookies else None
        self.session = make_session(concurrency, client, self.cookies)
        self.guard = AddressGuard((), allow_private=False)
        self.answers: dict[int, Any] = {}  # id -> AsyncResult of its open hop question
        self.inbox: deque[tuple[Any, ...]] = deque()
        self.wakeup = gevent.get_hub().loop.async_()
        self.wakeup.start(self._dispatch)
        self.gone = gevent.event.Event()
        self.extractors = gevent.threadpool.ThreadPool(EXTRACTORS)

    def serve(self) -> None:
        threading.Thread(target=self._read, name="fetcher-read", daemon=True).start()
        self.gone.wait()
        os._exit(0)  # the crawl process is gone: nothing here is worth finishing

    def send(self, message: tuple[Any, ...]) -> None:
        """Greenlets don't switch inside a pipe write: no lock is needed among them."""
        self.conn.send(message)

    def _relay(self, url: str, values: list[str]) -> None:
        """Cookies this process received, for the crawl process to hand to the other fetch processes."""
        self.send(("cookies", url, values))

    def _read(self) -> None:
        """On a thread of its own: the pipe's messages, handed to the hub."""
        while True:
            try:
                message = self.conn.recv()
            except (EOFError, OSError):
                message = ("gone",)
            self.inbox.append(message)
            self.wakeup.send()
            if message[0] == "gone":
                return

    def _dispatch(self) -> None:
        import gevent

        while self.inbox:
            kind, *rest = self.inbox.popleft()
            if kind == "get":
                gevent.spawn(self._answer, rest[0], self.page, *rest)
            elif kind == "robots":
                gevent.spawn(self._answer, rest[0], self.robots, *rest)
            elif kind == "hop" and rest[0] in self.answers:
                self.answers.pop(rest[0]).set(rest[1])
            elif kind == "guard":
                self.guard.trusted, self.guard.allow_private = rest
            elif kind == "cookies" and self.cookies is not None:
                self.cookies.keep_values(*rest)
            elif kind == "gone":
                self.gone.set()

    def _answer(self, rid: int, work: Callable[..., tuple[Response, Page | None]], *args: Any) -> None:
        try:
            response, page = work(*args)
        except Exception as exc:  # noqa: BLE001 (a bug costs one page: the crawl process records it)
            self.send(("failed", rid, f"internal: {exc!r}"[:500]))
        else:
            self.send(("done", rid, response, page))

    def page(self, rid: int, url: str, headers: dict[str, str] | None, named_sitemap: bool
             ) -> tuple[Response, Page | None]:
        from crawler.fetch.http import fetch_one
        from crawler.jobs import page_of

        response = fetch_one(self.session, url, self.limits, follow=lambda hop: self._ask(rid, hop),
                             headers=headers, guard=self.guard)
        self.send(("ended", rid, response.status, response.elapsed_ms))
        return response, page_of(response, named_sitemap, self._extract, self.limits.max_bytes)

    def robots(self, rid: int, url: str) -> tuple[Response, None]:
        from crawler.fetch.http import fetch_one

        return fetch_one(self.session, url, self.robots_limits, follow=lambda hop: self.guard.check(hop) is None,
                         guard=self.guard), None

    def _ask(self, rid: int, hop: str) -> bool:
        """Whether the crawl process has this hop followed in place (see JobRunner._follower)."""
        import gevent.event

        answer = self.answers[rid] = gevent.event.AsyncResult()
        self.send(("hop", rid, hop))
        try:
            return bool(answer.get(timeout=HOP_WAIT))
        except gevent.Timeout:
            self.answers.pop(rid, None)
            return False

    def _extract(self, response: Response, fn: Callable[[str, bytes, Any], Page], arg: Any) -> Page | None:
        """fn(url, body, arg) on a thread, within the parse time limit: the hub, and the fetches in flight,
        run on meanwhile (a page that takes seconds must not time them out). As in the extraction pool, the
        wait allows for the page's turn (`dead_after`); a thread can't be stopped: one past the limit
        finishes its page for nothing, and one that finishes past it is failed all the same (`timed`), as
        the pool would have cut it off."""
        import gevent

        from crawler.extract.pool import TooSlow, dead_after
        from crawler.jobs import extraction_failed

        limit = self.limits.parse_timeout
        try:
            work = self.extractors.spawn(timed, limit, fn, response.final_url, response.body, arg)
            return work.get(timeout=dead_after(limit))
        except gevent.Timeout:
            response.error = extraction_failed(TooSlow(), limit)
        except Exception as exc:  # noqa: BLE001 (a bug in extraction costs one page)
            response.error = extraction_failed(exc, limit)
        return None


def timed(limit: float, fn: Callable[[str, bytes, Any], Page], *args: Any) -> Page:
    """fn(*args), on an extraction thread; TooSlow if it took longer than `limit` seconds (a thread can't
    be stopped in time, but the page fails as in an extraction process)."""
    import time

    from crawler.extract.pool import TooSlow

    began = time.monotonic()
    page = fn(*args)
    if time.monotonic() - began > limit:
        raise TooSlow(f"over {limit:g} s")
    return page
