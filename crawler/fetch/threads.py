"""The thread engine: a multiprocessing.dummy Pool, one requests Session per thread (threading.local).

The fallback where gevent is absent or unwanted. Each thread's Session pools connections to the
hosts that thread talks to; `per_host` connections per host are enough there. The cookies are one
store shared by every thread, as the gevent engine's one session has.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import queue
import threading
from collections.abc import Callable
from multiprocessing.dummy import Pool
from multiprocessing.pool import Pool as ProcessPool
from typing import Any, TypeVar

from crawler.fetch.client import Client, CrawlSession, make_session

A = TypeVar("A")


class ThreadEngine:
    name = "threads"

    def __init__(self, concurrency: int, client: Client) -> None:
        self._pool = Pool(concurrency)
        self._done: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._local = threading.local()
        self._sessions: list[CrawlSession] = []
        self._client, self._cookies = client, client.cookie_store()  # one store: the same as on gevent
        self._aside = concurrent.futures.ThreadPoolExecutor(max(2, concurrency // 4), "aside")

    def submit(self, fn: Callable[[A], object], arg: A) -> None:
        self._pool.apply_async(fn, (arg,), callback=self._done.put, error_callback=self._done.put)

    def results(self, timeout: float) -> list[object]:
        """What finished, waiting up to `timeout` seconds for the first one."""
        try:
            items = [self._done.get(timeout=timeout)]
        except queue.Empty:
            return []
        while not self._done.empty():
            items.append(self._done.get_nowait())
        return items

    def session(self) -> CrawlSession:
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = make_session(4, self._client, self._cookies)
            self._sessions.append(session)  # list.append is atomic; closed in close()
        return session

    def tell(self, item: object) -> None:
        self._done.put(item)

    def apply(self, pool: ProcessPool, fn: Callable[..., Any], args: tuple[Any, ...], timeout: float) -> Any:
        """fn(*args) in a process of `pool`; this thread waits for it, TimeoutError after `timeout` seconds
        (a process that died takes its task with it: no answer ever comes)."""
        try:
            return pool.apply_async(fn, args).get(timeout)
        except multiprocessing.TimeoutError:
            raise TimeoutError(f"no answer in {timeout:g} s") from None

    def wait(self, start: Callable[[Callable[[Any], None], Callable[[BaseException], None]], None],
             timeout: float) -> Any:
        """The answer another thread hands over; this thread waits for it."""
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        start(future.set_result, future.set_exception)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            raise TimeoutError(f"no answer in {timeout:g} s") from None

    def aside(self, fn: Callable[..., Any], args: tuple[Any, ...], timeout: float) -> Any:
        """fn(*args) on a thread of the aside pool, so `timeout` holds (this thread gives up waiting)."""
        try:
            return self._aside.submit(fn, *args).result(timeout)
        except concurrent.futures.TimeoutError:
            raise TimeoutError(f"no answer in {timeout:g} s") from None

    def close(self, timeout: float = 5.0) -> None:
        self._aside.shutdown(wait=False, cancel_futures=True)
        self._pool.terminate()
        for session in self._sessions:
            session.close()
