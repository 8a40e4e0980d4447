"""The gevent engine: a greenlet per URL in flight, bounded by the concurrency.

Expects the process to be monkey-patched already (crawler.__main__ does it first). One requests
Session is shared by all greenlets: they run on one thread, and its pool is sized to the concurrency.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from functools import partial
from multiprocessing.pool import Pool
from typing import Any, TypeVar

import gevent
import gevent.event
import gevent.pool
import gevent.queue

from crawler.fetch.client import Client, CrawlSession, make_session

A = TypeVar("A")


class GeventEngine:
    name = "gevent"

    def __init__(self, concurrency: int, client: Client) -> None:
        self._pool = gevent.pool.Pool(concurrency)
        self._done: gevent.queue.Queue[Any] = gevent.queue.Queue()
        self._session = make_session(concurrency, client)
        self._arrivals: deque[tuple[gevent.event.AsyncResult, bool, Any]] = deque()
        self._wakeup = gevent.get_hub().loop.async_()
        self._wakeup.start(self._deliver)

    def submit(self, fn: Callable[[A], object], arg: A) -> None:
        self._pool.spawn(lambda: self._done.put(fn(arg)))

    def results(self, timeout: float) -> list[object]:
        """What finished, waiting up to `timeout` seconds for the first one."""
        try:
            items = [self._done.get(timeout=timeout)]
        except gevent.queue.Empty:
            return []
        while not self._done.empty():
            items.append(self._done.get_nowait())
        return items

    def session(self) -> CrawlSession:
        return self._session

    def tell(self, item: object) -> None:
        self._done.put(item)

    def apply(self, pool: Pool, fn: Callable[..., Any], args: tuple[Any, ...], timeout: float) -> Any:
        """fn(*args) in a process of `pool`; this greenlet waits for it, the others run on. TimeoutError
        after `timeout` seconds (a process that died takes its task with it: no answer ever comes)."""
        def start(answer: Callable[[Any], None], fail: Callable[[BaseException], None]) -> None:
            pool.apply_async(fn, args, callback=answer, error_callback=fail)

        return self.wait(start, timeout)

    def wait(self, start: Callable[[Callable[[Any], None], Callable[[BaseException], None]], None],
             timeout: float) -> Any:
        """The answer another thread (the pool's result thread, a fetch process' reader) hands over, through
        a deque and the hub's async watcher (the thread-safe way to wake a gevent hub): no thread is held
        per waiting greenlet."""
        waiter: gevent.event.AsyncResult = gevent.event.AsyncResult()
        start(partial(self._arrive, waiter, True), partial(self._arrive, waiter, False))
        try:
            return waiter.get(timeout=timeout)
        except gevent.Timeout:
            raise TimeoutError(f"no answer in {timeout:g} s") from None

    def aside(self, fn: Callable[..., Any], args: tuple[Any, ...], timeout: float) -> Any:
        """fn(*args) on the hub's thread pool: the hub, and every other greenlet's fetch, runs on meanwhile
        (in the caller's greenlet the work would hold the hub, and in-flight fetches would time out)."""
        try:
            return gevent.get_hub().threadpool.spawn(fn, *args).get(timeout=timeout)
        except gevent.Timeout:
            raise TimeoutError(f"no answer in {timeout:g} s") from None

    def _arrive(self, waiter: gevent.event.AsyncResult, ok: bool, value: Any) -> None:
        """On another thread: queue the outcome, wake the hub."""
        self._arrivals.append((waiter, ok, value))
        self._wakeup.send()

    def _deliver(self) -> None:
        """On the hub: hand every queued outcome to its greenlet."""
        while self._arrivals:
            waiter, ok, value = self._arrivals.popleft()
            if ok:
                waiter.set(value)
            else:
                waiter.set_exception(value)

    def close(self, timeout: float = 5.0) -> None:
        self._pool.kill(timeout=timeout)
        self._session.close()
        self._wakeup.stop()
