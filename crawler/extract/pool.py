"""The extraction pool's life: started immune to signals meant for the crawl, ended in bounded time,
and each task bounded in time inside its process.

Ctrl-C in a terminal goes to the whole foreground process group, and a service manager may SIGTERM the
whole group too: the extraction processes are the crawl's to stop, so they are born with SIGINT,
SIGTERM and SIGHUP blocked (also while they are still starting up: no tracebacks), keep extracting while the crawl
winds down, and are SIGKILLed by the crawl when it closes, or at its exit, or by the kernel if the crawl
dies (PR_SET_PDEATHSIG, see die_with_parent).

A task runs through `run_within`: an alarm in the extraction process interrupts a page that takes too
long (a pathological parse), so the process is free for the next one. A process that dies (the OOM
killer, a segfault) takes its task with it: the engines stop waiting after `dead_after(limit)`.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import multiprocessing
import signal
import threading
from collections.abc import Callable, Iterator
from multiprocessing import resource_tracker
from multiprocessing.pool import Pool
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from crawler.records import Page

T = TypeVar("T")
STOP_SECONDS = 2.0  # bound on each step of stopping the pool
PR_SET_PDEATHSIG = 1
STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}  # the crawl's to handle, not its children's


class TooSlow(Exception):
    """An extraction ran past its time limit (raised in the extraction process, pickled back)."""


class _Alarm(BaseException):
    """The alarm going off: a BaseException, so that no `except Exception` on the way (extract's own, a
    library's) takes it for an ordinary failure and carries on."""


def run_within(seconds: float, fn: Callable[..., T], *args: Any) -> T:
    """fn(*args), interrupted by TooSlow after `seconds` (in an extraction process: see die_with_parent)."""
    try:
        signal.setitimer(signal.ITIMER_REAL, seconds)
        try:
            return fn(*args)
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
    except _Alarm:
        raise TooSlow(f"over {seconds:g} s") from None


def dead_after(limit: float) -> float:
    """How long to wait for a task run within `limit` before taking its process for dead: its own limit,
    as long again for waiting its turn in the task queue, and a second for the round trip."""
    return 2 * limit + 1.0


def _alarm(signum: int, frame: object) -> None:
    raise _Alarm()


def html_page(url: str, body: bytes, content_type: str | None) -> Page:
    """crawler.extract.html.extract, imported where it runs: the crawl process, which only hands pages to
    the extraction processes, does not load bs4 (0.15 s of its start-up)."""
    from crawler.extract.html import extract

    return extract(url, body, content_type)


def start_worker() -> None:
    """Pool initializer: the process dies with the crawl, and loads the HTML extraction now, while the
    crawl starts (see extraction), not when its first page arrives."""
    die_with_parent()
    import crawler.extract.html  # noqa: F401


def die_with_parent() -> None:
    """In an extraction process (start_worker): the kernel kills it when the crawl process dies, even by SIGKILL."""
    for signum in STOP_SIGNALS:  # Ctrl-C, SIGTERM and SIGHUP are the parent's to handle: blocked from
        signal.signal(signum, signal.SIG_IGN)  # birth (born_deaf), and ignored should anything unblock them
    signal.signal(signal.SIGALRM, _alarm)  # run_within's
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        pass  # not Linux: the pool's own shutdown still applies


class _Quiet:
    """A notifier that notifies nobody (see ExtractionPool)."""

    def put(self, item: object) -> None:
        pass


class ExtractionPool(Pool):
    """multiprocessing's Pool with a quieter worker-handler thread.

    That thread (which replaces dead workers) also wakes whenever a result is waiting in the pool's
    pipe, often several times per result until the result thread has read it, and whenever the result
    cache empties. Under gevent each wake-up is a round of green polls on that thread: about a tenth of
    the crawl process' CPU. Here it waits for what it acts on: a worker's exit, close() or terminate().
    (So close() then join() with results still pending would wait for good: the crawl terminates.)
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._cache.notifier = _Quiet()  # type: ignore[attr-defined]

    def _get_sentinels(self) -> list[Any]:
        return [self._change_notifier._reader]  # type: ignore[attr-defined]


def start_pool(workers: int) -> Pool:
    """The extraction processes. spawn: a child must not inherit a monkey-patched interpreter."""
    return ExtractionPool(workers, initializer=start_worker, context=multiprocessing.get_context("spawn"))


def born_deaf(start: Callable[[], T]) -> T:
    """start(), which starts processes: they are born with the crawl's stop signals blocked (and ignore
    them once running, see die_with_parent), so a Ctrl-C while they import is not theirs either."""
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGHUP})
    try:  # the tracker ignores SIGINT and SIGTERM itself; a closed terminal's SIGHUP must not kill it either
        resource_tracker.ensure_running()  # starting it unblocks SIGINT/SIGTERM: do it before blocking them
        signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        return start()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)


def start_extraction(workers: int) -> Pool | None:
    """The extraction pool (None for 0 workers), stopped by `stop_pool` at the latest at exit."""
    if workers <= 0:
        return None
    pool = born_deaf(lambda: start_pool(workers))
    atexit.register(stop_pool, pool)  # before multiprocessing's own exit hook, which would wait forever
    return pool


@contextlib.contextmanager
def extraction(workers: int) -> Iterator[Pool | None]:
    """The extraction pool of the enclosed crawl (None for 0 workers), stopped when it ends. Started
    first: its processes import their modules (~0.4 s) while the crawl opens and migrates its database."""
    pool = start_extraction(workers)
    try:
        yield pool
    finally:
        if pool is not None:
            stop_pool(pool)


def stop_pool(pool: Pool, timeout: float = STOP_SECONDS) -> None:
    """End the extraction processes in bounded time; safe to call again. Pool.terminate would wait for
    ever on processes that ignore its SIGTERM, and can hang for good once a worker is gone while holding
    the task queue's lock. So: terminate in a daemon thread (it stops the pool's threads, so no worker
    is replaced), then SIGKILL the processes; a terminate still stuck is left behind."""
    threading.Thread(target=pool.terminate, name="pool-terminate", daemon=True).start()
    pool._worker_handler.join(timeout)  # type: ignore[attr-defined]  # no public handle on these
    processes = list(pool._pool)  # type: ignore[attr-defined]
    for process in processes:
        process.kill()
    for process in processes:
        process.join(timeout)
