"""Politeness: per-host slots that say when the next request to a host may start. The clock is an argument.

Scrapy's downloader slot rule: a request may start when fewer than `per_host` are in flight to the host
and at least the host's delay has passed since the last start (penalty = delay - now + last_start).
The delay of a host is max(global delay, the host's own, e.g. robots.txt Crawl-delay) plus a backoff
that doubles on 429/503 and halves on every other answer, in the spirit of Scrapy's AutoThrottle.
Every method takes `now` (any monotonic clock, in seconds) so tests use numbers, not sleeps.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

THROTTLED = frozenset({429, 503})  # answers that mean "slow down"
MIN_BACKOFF = 1.0  # the first backoff step, unless the host's delay is larger
FORGET_BACKOFF = 0.05  # a decaying backoff below this many seconds is dropped


@dataclass(slots=True)
class _Slot:
    in_flight: int = 0
    last_start: float = -math.inf
    delay: float = 0.0  # the host's own base delay (robots.txt Crawl-delay)
    backoff: float = 0.0  # extra delay after 429/503

    def idle(self) -> bool:
        return self.in_flight == 0 and self.delay == 0.0 and self.backoff == 0.0


class Politeness:
    """Per-host concurrency and spacing of request starts."""

    def __init__(self, per_host: int, delay: float, max_delay: float = 60.0) -> None:
        if per_host < 1:
            raise ValueError(f"per_host must be at least 1, got {per_host}")
        if not (0.0 <= delay < math.inf):
            raise ValueError(f"delay must be a number of seconds, at least 0, got {delay}")
        self.per_host = per_host
        self.delay = delay
        self.max_delay = max(max_delay, delay)  # the cap on backoff; a user's own delay may be longer
        self._slots: dict[str, _Slot] = {}
        self._busy: set[str] = set()
        self._freed: set[str] = set()  # hosts a request finished at since take_freed last looked

    def can_start(self, host: str, now: float) -> bool:
        """True when a request to `host` may start now."""
        return host not in self._busy and self.wait_time(host, now) == 0.0

    def wait_time(self, host: str, now: float) -> float:
        """Seconds until `host` is ready by time alone: 0.0 if ready now, math.inf if it is busy
        (per_host requests in flight; only `finished` can free it). A scheduler sleeps for the
        minimum over its waiting hosts, or until a request finishes, whichever comes first."""
        if host in self._busy:
            return math.inf
        slot = self._slots.get(host)
        if slot is None:
            return 0.0
        return max(0.0, slot.last_start + self._effective_delay(slot) - now)

    def started(self, host: str, now: float) -> None:
        """A request to `host` starts now."""
        slot = self._slots.setdefault(host, _Slot())
        slot.in_flight += 1
        slot.last_start = now
        if slot.in_flight >= self.per_host:
            self._busy.add(host)

    def finished(self, host: str, now: float, status: int | None, sent: float | None = None) -> None:
        """A request to `host` ended with HTTP `status` (None: no response). 429/503 doubles the
        host's backoff; any other status halves it; None (connection error, timeout) leaves it.

        `sent`, when given, is when the request actually went out (an estimate no earlier than that): a busy
        engine can send it well after `started`, and the next start keeps its distance from what the
        server saw."""
        slot = self._slots.get(host)
        if slot is None or slot.in_flight == 0:
            raise ValueError(f"finished() for {host!r} without a matching started()")
        slot.in_flight -= 1
        self._busy.discard(host)
        self._freed.add(host)
        if sent is not None:
            slot.last_start = max(slot.last_start, min(sent, now))
        if status in THROTTLED:
            self._increase_backoff(slot)
        elif status is not None:
            self._decrease_backoff(slot)
        self._forget_if_idle(host, slot, now)

    def set_delay(self, host: str, seconds: float) -> None:
        """Raise `host`'s own base delay (e.g. to its robots.txt Crawl-delay); never lowers it."""
        if not seconds >= 0.0:  # also rejects NaN
            raise ValueError(f"delay must be >= 0, got {seconds}")
        slot = self._slots.setdefault(host, _Slot())
        slot.delay = max(slot.delay, seconds)

    def take_freed(self) -> set[str]:
        """The hosts a request finished at since the last call (a scheduler wakes them up), forgotten."""
        freed, self._freed = self._freed, set()
        return freed

    def has_freed(self) -> bool:
        return bool(self._freed)

    def in_flight(self, host: str) -> int:
        """Requests to `host` started and not finished."""
        slot = self._slots.get(host)
        return slot.in_flight if slot else 0

    def busy_hosts(self) -> set[str]:
        """Hosts with per_host requests in flight: nothing more can start there until one finishes."""
        return set(self._busy)

    def delay_of(self, host: str) -> float:
        """The current spacing between request starts to `host`: base delay plus backoff."""
        slot = self._slots.get(host)
        return self._effective_delay(slot) if slot else self.delay

    def __len__(self) -> int:
        """The number of hosts with state kept (in flight, a delay of their own, or a backoff)."""
        return len(self._slots)

    def _effective_delay(self, slot: _Slot) -> float:
        return max(self.delay, slot.delay) + slot.backoff

    def _increase_backoff(self, slot: _Slot) -> None:
        first = max(self.delay, slot.delay, MIN_BACKOFF)
        slot.backoff = min(self.max_delay, slot.backoff * 2 if slot.backoff else first)

    def _decrease_backoff(self, slot: _Slot) -> None:
        slot.backoff /= 2
        if slot.backoff < FORGET_BACKOFF:
            slot.backoff = 0.0

    def _forget_if_idle(self, host: str, slot: _Slot, now: float) -> None:
        """Drop a slot a fresh one would equal, so memory follows the hosts that need state."""
        if slot.idle() and now >= slot.last_start + self.delay:
            del self._slots[host]
