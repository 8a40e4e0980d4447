"""Progress: a live line on a terminal (tqdm) while the crawl runs; nothing when stderr is not a terminal."""

from __future__ import annotations

import sys
import time

from tqdm import tqdm

REFRESH_SECONDS = 0.5


class Progress:
    def __init__(self, enabled: bool) -> None:
        self._bar = tqdm(unit=" pages", file=sys.stderr, dynamic_ncols=True) if enabled else None
        self._shown = 0
        self._last = 0.0

    @classmethod
    def for_terminal(cls, quiet: bool) -> Progress:
        return cls(enabled=not quiet and sys.stderr.isatty())

    def update(self, pages: int, errors: int, rate: float, queued: int) -> None:
        now = time.monotonic()
        if self._bar is None or now - self._last < REFRESH_SECONDS:
            return
        self._last = now
        self._bar.update(pages - self._shown)
        self._shown = pages
        self._bar.set_postfix_str(f"errors={errors} rate={rate:.1f}/s buffered={queued}", refresh=False)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
