"""The engine seams: what the crawl loop drives (Engine) and what a job running on it asks of it (Workers).

An engine runs functions concurrently: a greenlet each (crawler.fetch.green) or a pool thread each
(crawler.fetch.threads). The loop submits `fn(arg)` and collects what came back; the function, running
on the engine, asks it for an HTTP session for its greenlet or thread and to wait on the extraction pool
without blocking the others. A test engine may run the functions in place, or answer by itself.
"""

from __future__ import annotations

from collections.abc import Callable
from multiprocessing.pool import Pool
from typing import Any, Protocol, TypeVar

from crawler.fetch.client import CrawlSession

A = TypeVar("A")


class Engine(Protocol):
    def submit(self, fn: Callable[[A], object], arg: A) -> None:
        """Run fn(arg) concurrently; its value (or the exception it raised) comes out of `results`."""
        ...

    def results(self, timeout: float) -> list[object]:
        """What finished, waiting up to `timeout` seconds for the first one."""
        ...

    def close(self) -> None:
        """Stop everything in flight, in bounded time."""
        ...


class Workers(Protocol):
    def session(self) -> CrawlSession:
        """The HTTP session of the calling greenlet or thread."""
        ...

    def apply(self, pool: Pool, fn: Callable[..., Any], args: tuple[Any, ...], timeout: float) -> Any:
        """fn(*args) in a process of `pool`, the caller waiting and the others running on; TimeoutError
        after `timeout` seconds."""
        ...

    def wait(self, start: Callable[[Callable[[Any], None], Callable[[BaseException], None]], None],
             timeout: float) -> Any:
        """What `start(answer, fail)` brings: start sets off work whose answer another thread hands to
        `answer` (or its exception to `fail`); the caller waits for it, the others running on.
        TimeoutError after `timeout` seconds."""
        ...

    def tell(self, item: object) -> None:
        """Hand `item` to the loop among the results now, while the calling job runs on (its own value
        comes after it)."""
        ...

    def aside(self, fn: Callable[..., Any], args: tuple[Any, ...], timeout: float) -> Any:
        """fn(*args) on a thread of its own (CPU work with no extraction pool: --parse-workers 0), the caller
        waiting and the others running on; TimeoutError after `timeout` seconds (the thread finishes the
        call and its answer is dropped: a thread cannot be stopped)."""
        ...


class FetchEngine(Engine, Workers, Protocol):
    """An engine whose jobs may ask it for sessions and the extraction pool: both real engines are."""
