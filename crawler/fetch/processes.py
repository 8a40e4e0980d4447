"""Fetch processes: the extraction processes fetch their pages too, so the crawl process does not.

One crawl process can't keep up with its HTTP client and the hand-off of every body to extraction: it
is the serial part of a crawl (see the README's Performance). With fetch processes, it keeps the
frontier, the scheduler, discovery and the store, and hands each process URLs; each runs a gevent hub
(crawler.fetch.fetcher) that fetches, extracts in place and sends back the page without its body.

Everything that reads the crawl's state stays here: a fetch process asks, hop by hop, whether a redirect
is followed in place (JobRunner._follower answers it). The address guard's rule is sent to each process
(again when a seed's redirect widens it); the cookies one process receives are sent on to the others.
A process that dies costs the pages it had in hand (each gets an error row) and is replaced.

On the crawl's side, a reader thread per process hands each message to the waiting job (a greenlet or
a thread) through the engine's `wait`.
"""

from __future__ import annotations

import itertools
import multiprocessing
import os
import pickle
import threading
from collections import deque
from collections.abc import Callable, Mapping
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

from crawler.extract.pool import born_deaf, dead_after
from crawler.fetch import fetcher
from crawler.fetch.base import Workers
from crawler.fetch.client import Client
from crawler.records import FetchEnded, Job, Page, Response
from crawler.settings import Limits

STOP_SECONDS = 2.0  # bound on joining a killed process
LATE = 10.0  # seconds past a process' own bound before it is taken to be hung (it tells a slow page itself)
REPLACEMENTS = 100  # dead processes replaced in one crawl at most (one that dies as it starts: not for ever)
Follow = Callable[[str], bool]


class Mailbox:
    """One page's messages from its fetch process, taken one at a time by the job waiting for them."""

    def __init__(self) -> None:
        self._items: deque[tuple[Any, ...]] = deque()
        self._taker: Callable[[Any], None] | None = None
        self._lock = threading.Lock()

    def put(self, message: tuple[Any, ...]) -> None:
        """On the reader thread."""
        with self._lock:
            taker, self._taker = self._taker, None
            if taker is None:
                self._items.append(message)
                return
        taker(message)

    def take(self, answer: Callable[[Any], None], fail: Callable[[BaseException], None]) -> None:
        """For Workers.wait: the next message goes to `answer`, now or when it arrives."""
        with self._lock:
            if not self._items:
                self._taker = answer
                return
            message = self._items.popleft()
        answer(message)


class FetchProcess:
    """One fetch process, its pipe and the pages it has in hand."""

    def __init__(self, setup: bytes, on_message: Callable[[FetchProcess, tuple[Any, ...]], None]) -> None:
        ours, theirs = multiprocessing.Pipe(duplex=True)
        for end in (ours, theirs):  # (a socketpair: under gevent's patch, made non-blocking)
            os.set_blocking(end.fileno(), True)
        context = multiprocessing.get_context("spawn")  # a child must not inherit a monkey-patched interpreter
        self.process: BaseProcess = context.Process(target=fetcher.main, args=(theirs, setup), daemon=True,
                                                    name="crawl-fetch")
        born_deaf(self.process.start)
        theirs.close()
        self.conn: Connection = ours
        self.boxes: dict[int, Mailbox] = {}
        self.closing = self.dead = False
        self._send_lock = threading.Lock()  # the reader thread relays cookies while jobs send
        self._on_message = on_message
        threading.Thread(target=self._read, name="fetch-read", daemon=True).start()

    def send(self, message: tuple[Any, ...]) -> None:
        with self._send_lock:
            self.conn.send(message)

    def _read(self) -> None:
        while True:
            try:
                message = self.conn.recv()
            except (EOFError, OSError):
                break
            self._on_message(self, message)
        self.dead = True  # (before the boxes are told: a page given it from now on sees it, see _run)
        for box in list(self.boxes.values()):
            box.put(("died", None))
        self._on_message(self, ("died", None))

    def kill(self) -> None:
        self.closing = True
        self.process.kill()
        self.process.join(STOP_SECONDS)
        self.conn.close()


class FetchProcesses:
    """The crawl's fetch processes (see the module docstring); `page` and `robots` run on the engine's
    greenlets or threads, and wait through the engine."""

    def __init__(self, count: int, client: Client, limits: Limits, robots_limits: Limits, concurrency: int) -> None:
        self._setup = pickle.dumps((client, limits, robots_limits, concurrency))
        self.limits = limits
        self._ids, self._turns = itertools.count(), itertools.count()
        self._lock = threading.Lock()
        self._rule: tuple[Any, ...] | None = None  # the guard's last rule, for a replacement process
        self._closed = False
        self._replaced = 0
        self.processes: list[FetchProcess] = []
        with self._lock:  # (a process that dies at once is replaced once this list is whole)
            self.processes.extend(FetchProcess(self._setup, self._received) for _ in range(count))

    def guard(self, trusted: frozenset[tuple[str, int]], allow_private: bool) -> None:
        """The address guard's rule, for every process (before the pages it applies to)."""
        self._rule = ("guard", trusted, allow_private)
        self._broadcast(self._rule)

    def page(self, engine: Workers, job: Job, headers: Mapping[str, str] | None, follow: Follow,
             named_sitemap: bool) -> tuple[Response, Page | None]:
        """Fetch and extract job's page in a fetch process: its response (body dropped) and page."""
        return self._run(engine, ("get", job.url, headers, named_sitemap), follow, job)

    def robots(self, engine: Workers, url: str) -> Response:
        """Fetch a robots.txt in a fetch process (its hops: the guard's rule alone)."""
        return self._run(engine, ("robots", url), lambda hop: False, None)[0]

    def _run(self, engine: Workers, request: tuple[Any, ...], follow: Follow, job: Job | None
             ) -> tuple[Response, Page | None]:
        rid, box = next(self._ids), Mailbox()
        process = self._least_busy()
        process.boxes[rid] = box
        try:
            try:
                process.send((request[0], rid, *request[1:]))
            except OSError:
                process.dead = True
            if process.dead:  # it died since it was chosen: its reader may have told the boxes already
                return self._lost(request[1], False, "died"), None
            ended = False
            while True:
                kind, *values = self._next(engine, box, ended)
                if kind == "hop":
                    process.send(("hop", rid, follow(values[1])))
                elif kind == "ended":
                    ended = True
                    if job is not None:
                        engine.tell(FetchEnded(job, values[1], values[2]))
                elif kind == "done":
                    return values[1], values[2]
                elif kind == "failed":
                    raise RuntimeError(values[1])
                else:  # died, or hung: then it is killed, and its reader replaces it
                    if kind == "hung":
                        process.process.kill()
                    return self._lost(request[1], ended, kind), None
        finally:
            process.boxes.pop(rid, None)

    def _next(self, engine: Workers, box: Mailbox, ended: bool) -> tuple[Any, ...]:
        """The page's next message; ("hung", None) once it is late past any bound its fetch keeps."""
        limit = dead_after(self.limits.parse_timeout) + LATE if ended else fetch_bound(self.limits)
        try:
            return engine.wait(box.take, limit)
        except TimeoutError:
            return ("hung", None)

    @staticmethod
    def _lost(url: str, ended: bool, kind: str) -> Response:
        """A page whose process died, or hung (it is killed, and replaced), before it answered."""
        what = "hung" if kind == "hung" else "died"
        if ended:
            return Response(url, url, error=f"parse error: its fetch process {what} while extracting")
        return Response(url, url, error=f"internal: its fetch process {what} while fetching")

    def _least_busy(self) -> FetchProcess:
        """The process with the fewest pages in hand; of equals, each in turn (so one page at a time
        still goes to all of them)."""
        with self._lock:
            alive = [process for process in self.processes if not process.dead]
        if not alive:
            raise RuntimeError(f"every fetch process died, and {REPLACEMENTS} were replaced already")
        turn = next(self._turns) % len(alive)
        return min(alive[turn:] + alive[:turn], key=lambda process: len(process.boxes))

    def _received(self, process: FetchProcess, message: tuple[Any, ...]) -> None:
        """On a process' reader thread: a page's message to its mailbox; cookies on to the others."""
        kind = message[0]
        if kind == "cookies":
            self._broadcast(message, besides=process)
        elif kind == "died":
            self._replace(process)
        else:
            box = process.boxes.get(message[1])
            if box is not None:
                box.put(message)

    def _broadcast(self, message: tuple[Any, ...], besides: FetchProcess | None = None) -> None:
        for process in list(self.processes):
            if process is not besides and not process.closing:
                try:
                    process.send(message)
                except OSError:
                    pass  # it is dying: its reader replaces it

    def _replace(self, dead: FetchProcess) -> None:
        with self._lock:
            if self._closed or dead.closing or dead not in self.processes or self._replaced >= REPLACEMENTS:
                return
            self._replaced += 1
            fresh = FetchProcess(self._setup, self._received)
            self.processes[self.processes.index(dead)] = fresh
        if self._rule is not None:
            fresh.send(self._rule)

    def close(self) -> None:
        """Kill every process, in bounded time; safe to call twice."""
        with self._lock:
            self._closed = True
        for process in self.processes:
            process.kill()


def fetch_bound(limits: Limits) -> float:
    """The longest a fetch can take before its request ends, with its retries, their pauses and every hop:
    past it, the process is taken to be hung."""
    attempts = limits.retries + 1
    per_hop = attempts * limits.timeout + limits.retries * max(limits.max_retry_after, 30 * limits.backoff)
    return (limits.max_redirects + 1) * per_hop + LATE
