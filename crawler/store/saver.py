"""The saver: a batch's save (its pages and links, the biggest part of a flush) on a thread of its own.

While the database writes a batch, the crawl loop goes on dispatching and collecting: before, every
fetch and extraction process went idle for as long as a save took (100-200 ms twice a second on a
one-host crawl). One save runs at a time, and the loop does no other write meanwhile (a claim, the
heartbeat): a SQLite database has one writer, and the loop must not wait for its lock. The sink is any
crawler.store.Sink; the batch's parked jobs (see crawler.crawl) travel with its outcomes.
"""

from __future__ import annotations

import threading

from crawler.records import Job, Outcome
from crawler.store import Sink
from crawler.store.db import StoreError


class SaveFailed(Exception):
    """A save raised `error`: its outcomes (and parked jobs) are not stored."""

    def __init__(self, error: StoreError, outcomes: list[Outcome], parked: list[Job]) -> None:
        super().__init__(str(error))
        self.error, self.outcomes, self.parked = error, outcomes, parked


class Saver:
    """Runs sink.save(outcomes) on a thread; `finish` hands the batch back once it is stored."""

    def __init__(self, sink: Sink) -> None:
        self.sink = sink
        self._thread: threading.Thread | None = None
        self._batch: tuple[list[Outcome], list[Job]] = ([], [])
        self._error: BaseException | None = None

    @property
    def busy(self) -> bool:
        """Whether a save is under way: begun and not finished (its thread may have ended)."""
        return self._thread is not None

    def begin(self, outcomes: list[Outcome], parked: list[Job]) -> None:
        """Start saving `outcomes`; the last save must be finished."""
        assert self._thread is None, "one save at a time"
        self._batch, self._error = (outcomes, parked), None
        self._thread = threading.Thread(target=self._save, name="crawl-save", daemon=True)
        self._thread.start()

    def _save(self) -> None:
        try:
            self.sink.save(self._batch[0])
        except BaseException as error:  # noqa: BLE001 - raised again on the loop's thread by finish()
            self._error = error

    def finish(self, wait: bool) -> tuple[list[Outcome], list[Job]] | None:
        """The batch (outcomes, parked jobs) once its save has ended, waited for if `wait`; None while it
        runs, or when none was begun. A StoreError of the save is raised as SaveFailed, anything else
        (a bug) as it was."""
        if self._thread is None or (self._thread.is_alive() and not wait):
            return None
        self._thread.join()
        batch, error = self._batch, self._error
        self._thread, self._batch, self._error = None, ([], []), None
        if isinstance(error, StoreError):
            raise SaveFailed(error, *batch)
        if error is not None:
            raise error
        return batch

    def join(self) -> None:
        """Wait for a save under way to end, however it ends (the crawl is closing)."""
        if self._thread is not None:
            self._thread.join()
