"""Stop: how SIGINT (Ctrl-C), SIGTERM and SIGHUP (a closed terminal, a dropped ssh) end a crawl, at any moment, leaving a database to resume from.

- The first signal only sets `Stop.signum`, a flag the crawl loop reads: it stops claiming, lets
  in-flight requests finish for a few seconds, saves what arrived, and the crawl ends `interrupted`
  (exit 130, or 143 for SIGTERM, 129 for SIGHUP). A signal never lands between two halves of a record.
- The second raises HardStop, to stop at once: no waiting for requests, no last save (what was fetched
  and not saved is fetched again on resume). It also arms a watchdog that ends the process if the
  cleanup hangs. A third signal, or one after the crawl has closed, ends the process on the spot.

Whatever the moment, the database holds whole transactions only (SQLite commits all of one or none),
and the extraction processes go down with the crawl (PR_SET_PDEATHSIG, see crawler.extract.pool).
"""

from __future__ import annotations

import atexit
import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

EXIT_FOR_SIGNAL: dict[int, int] = {signal.SIGINT: 130, signal.SIGTERM: 143, signal.SIGHUP: 129}
HARD_STOP_SECONDS = 2.0  # after the second signal, the process ends this soon even if cleanup hangs
STOPPING = b"crawl: stopping (Ctrl-C again to stop at once)\n"


class HardStop(SystemExit):
    """The second signal. A SystemExit, so gevent's hub hands it to the main greenlet without printing
    a traceback, and one that gets out of everything still exits with the signal's code."""


class Stop:
    """The signal handler and what it has seen (see the module docstring)."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self.hard = False
        self._installed = False

    def requested(self) -> bool:
        return self.signum is not None

    @property
    def exit_code(self) -> int:
        return EXIT_FOR_SIGNAL.get(self.signum or signal.SIGINT, 130)

    @contextmanager
    def installed(self, exiting: bool = False) -> Iterator[Stop]:
        """The handler, for the block (nested blocks: the outermost counts). With `exiting` (the process
        ends after the block) and a signal seen, the handler stays: a later signal then ends the process
        at once, with the same exit code, even during the interpreter's teardown."""
        if self._installed:
            yield self
            return
        previous = {signum: signal.signal(signum, self._handle) for signum in EXIT_FOR_SIGNAL}
        self._installed = True
        try:
            yield self
        except HardStop:
            hard_exit(self.exit_code)
        finally:
            self._installed = False
            if exiting and self.signum is not None:
                atexit.register(ignore_signals)
            else:
                for signum, old in previous.items():
                    signal.signal(signum, old)

    def _handle(self, signum: int, frame: object) -> None:
        if self.signum is None:
            self.signum = signum
            os.write(2, STOPPING)  # not sys.stderr: the signal may have interrupted a write to it
            return
        if self.hard or not self._installed:
            hard_exit(self.exit_code)
        self.hard = True
        watchdog = threading.Timer(HARD_STOP_SECONDS, hard_exit, (self.exit_code,))
        watchdog.daemon = True
        watchdog.start()
        raise HardStop(self.exit_code)


def ignore_signals() -> None:
    """At exit: the interpreter's own teardown then outlives any further Ctrl-C (it resets handlers, not
    ignored signals, so the exit code stays 130/143 rather than death by signal)."""
    for signum in EXIT_FOR_SIGNAL:
        signal.signal(signum, signal.SIG_IGN)


def hard_exit(code: int) -> None:
    """End the process now, from a handler or any thread. Safe for the data (see the module docstring)."""
    os.write(2, b"crawl: stopped at once; run `crawl` with the same --db to resume\n")
    os._exit(code)
