"""Progress: a live line on a terminal (tqdm) while the crawl runs; nothing when stderr is not a terminal.

The line shows pages done, tqdm's one rate (pages/s), errors, and how many URLs the frontier still
holds (queued or in flight, by any process): the same count that says when the crawl is over. While
no page arrives and robots.txt answers are awaited, it says which origin it waits on. It is redrawn at
most every REFRESH_SECONDS, and once more with the final numbers when it closes.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Collection
from typing import TextIO

from tqdm import tqdm

from crawler.terminal import safe

REFRESH_SECONDS = 0.5


class Progress:
    def __init__(self, enabled: bool, file: TextIO | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self._bar = tqdm(unit=" pages", file=file or sys.stderr, dynamic_ncols=True) if enabled else None
        self._clock = clock
        self._last = -REFRESH_SECONDS
        self._drawn = False
        self._queued = 0  # as last read: the final redraw does not query a frontier that may be gone
        self._latest: tuple[int, int, Callable[[], int], Collection[str]] = (0, 0, lambda: 0, ())

    @classmethod
    def for_terminal(cls, quiet: bool) -> Progress:
        return cls(enabled=not quiet and sys.stderr.isatty())

    def update(self, pages: int, errors: int, queued: Callable[[], int], robots_awaited: Collection[str] = (),
               now: bool = False) -> None:
        """The crawl's numbers; cheap to call on every loop pass: the line is redrawn when due (or `now`),
        and only then is `queued()` (the frontier's count, a query) called."""
        self._latest = (pages, errors, queued, robots_awaited)
        at = self._clock()
        if self._bar is not None and (now or at - self._last >= REFRESH_SECONDS):
            self._last = at
            self._draw()

    def close(self) -> None:
        """Redraw with the final numbers (the queued count as last read), then leave the line as it is."""
        if self._bar is not None:
            self._draw(final=True)
            self._bar.close()
            self._bar = None

    def _draw(self, final: bool = False) -> None:
        assert self._bar is not None
        pages, errors, queued, awaited = self._latest
        if not self._drawn:  # a resumed crawl's earlier pages: counted, but not in this run's rate
            self._bar.initial = self._bar.n = self._bar.last_print_n = pages
            self._drawn = True
        arrived = pages - self._bar.n
        self._queued = self._queued if final else queued()
        words = f"errors={errors} queued={self._queued}"
        if awaited and not arrived and not final:
            first = min(awaited)
            words += f" waiting for {safe(first)}/robots.txt" + (f" (+{len(awaited) - 1})" if len(awaited) > 1 else "")
        self._bar.set_postfix_str(words, refresh=False)
        self._bar.n = pages  # (not update(): tqdm's rate is then pages/s over this run, one redraw per call)
        self._bar.refresh()
