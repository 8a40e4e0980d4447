"""The gevent engine: a greenlet per URL in flight, bounded by the concurrency.

Expects the process to be monkey-patched already (crawler.__main__ does it first). One requests
Session is shared by all greenlets: they run on one thread, and its pool is sized to the concurrency.
"""

from __future__ import annotations

from collections.abc import Callable
from multiprocessing.pool import AsyncResult
from typing import Any

import gevent
import gevent.pool
import gevent.queue
import requests

from crawler.fetch.http import make_session


class GeventEngine:
    name = "gevent"

    def __init__(self, concurrency: int, user_agent: str) -> None:
        self._pool = gevent.pool.Pool(concurrency)
        self._done: gevent.queue.Queue[Any] = gevent.queue.Queue()
        self._session = make_session(concurrency, user_agent)

    def submit(self, fn: Callable[..., Any], *args: Any) -> None:
        self._pool.spawn(lambda: self._done.put(fn(*args)))

    def results(self, timeout: float) -> list[Any]:
        """What finished, waiting up to `timeout` seconds for the first one."""
        try:
            items = [self._done.get(timeout=timeout)]
        except gevent.queue.Empty:
            return []
        while not self._done.empty():
            items.append(self._done.get_nowait())
        return items

    def session(self) -> requests.Session:
        return self._session

    def wait(self, result: AsyncResult) -> Any:
        """Wait for a multiprocessing result on the hub's thread pool, so other greenlets keep running."""
        return gevent.get_hub().threadpool.apply(result.get)

    def close(self, timeout: float = 5.0) -> None:
        self._pool.kill(timeout=timeout)
        self._session.close()
