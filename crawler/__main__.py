"""Entry point: picks the engine from argv and, for gevent, monkey-patches before anything else is imported.

Monkey-patching is a process-wide side effect, so it happens here, once, first (celery's
maybe_patch_concurrency does the same). `thread=False, queue=False` keeps real threads and queues,
which multiprocessing's Pool needs (see STYLE.md: the full patch hangs the pool).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Iterator

NO_GEVENT_NOTICE = "crawl: gevent is not available; using --engine threads"


def engine_from_argv(argv: list[str]) -> str:
    """The --engine value as given on the command line (or CRAWL_ENGINE), defaulting to gevent."""
    for i, arg in enumerate(argv):
        if arg == "--engine" and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--engine="):
            return arg.split("=", 1)[1]
    return os.environ.get("CRAWL_ENGINE", "gevent")


def wants_gevent(argv: list[str]) -> bool:
    """gevent is needed only for a crawl run on the gevent engine, not for sql/stats/bench.

    (`crawl bench` runs its crawl in a child `python -m crawler`, which patches itself.)
    """
    if argv and argv[0] in ("sql", "stats", "crawls", "export", "bench", "--help", "--version"):
        return False
    return engine_from_argv(argv) == "gevent"


def without_engine(argv: list[str]) -> list[str]:
    """argv less any --engine option, so that CRAWL_ENGINE decides."""
    out: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--engine":
            skip = True
        elif not arg.startswith("--engine="):
            out.append(arg)
    return out


def patch_gevent() -> bool:
    """Monkey-patch for gevent; False when gevent can't be imported."""
    try:
        from gevent import monkey
    except ImportError:
        return False
    with one_entry_point_scan():
        monkey.patch_all(thread=False, queue=False)
    return True


@contextlib.contextmanager
def one_entry_point_scan() -> Iterator[None]:
    """patch_all looks up its plugins' entry points ~20 times, and each lookup reads every installed
    distribution's metadata (0.15 s of start-up in a venv of 100 packages): meanwhile, lookups are
    answered from one scan. The plugins found, and called, are the same."""
    from importlib import metadata

    scan, lookup = metadata.entry_points(), metadata.entry_points
    metadata.entry_points = lambda **params: scan.select(**params)  # type: ignore[assignment]
    try:
        yield
    finally:
        metadata.entry_points = lookup


def stop_before_start(signum: int, frame: object) -> None:
    """SIGINT/SIGTERM/SIGHUP while `crawl` is still importing (a second or more): nothing is written yet, so
    it ends at once with 130/143/129 and no traceback. crawler.stop takes over when the crawl starts."""
    os.write(2, b"crawl: stopped\n")
    os._exit(128 + signum)


def main() -> None:
    argv = sys.argv[1:]
    if not (argv and argv[0] in ("sql", "stats", "crawls", "export", "bench")):  # those keep Python's KeyboardInterrupt
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, stop_before_start)
    if wants_gevent(argv) and not patch_gevent():
        print(NO_GEVENT_NOTICE, file=sys.stderr)
        os.environ["CRAWL_ENGINE"] = "threads"
        argv = without_engine(argv)
    from crawler.cli import cli

    cli.main(args=argv, prog_name="crawl")


if __name__ == "__main__":
    main()
