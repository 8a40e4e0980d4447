"""The extraction pool's life: started immune to signals meant for the crawl, ended in bounded time.

Ctrl-C in a terminal goes to the whole foreground process group, and a service manager may SIGTERM the
whole group too: the extraction processes are the crawl's to stop, so they are born with SIGINT and
SIGTERM blocked (also while they are still starting up: no tracebacks), keep extracting while the crawl
winds down, and are SIGKILLed by the crawl when it closes, or at its exit, or by the kernel if the crawl
dies (PR_SET_PDEATHSIG, see crawler.worker.die_with_parent).
"""

from __future__ import annotations

import atexit
import signal
import threading
from multiprocessing import resource_tracker
from multiprocessing.pool import Pool

from crawler.worker import start_pool

STOP_SECONDS = 2.0  # bound on each step of stopping the pool


def start_extraction(workers: int) -> Pool | None:
    """The extraction pool (None for 0 workers), stopped by `stop_pool` at the latest at exit."""
    if workers <= 0:
        return None
    resource_tracker.ensure_running()  # starting it unblocks both signals: do it before blocking them
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    try:
        pool = start_pool(workers)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
    atexit.register(stop_pool, pool)  # before multiprocessing's own exit hook, which would wait forever
    return pool


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
