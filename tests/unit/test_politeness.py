"""crawler.politeness: per-host slots, driven by numbers as the clock."""

from __future__ import annotations

import math

import pytest

from crawler.politeness import Politeness

H = "example.com"


def test_fresh_host_is_ready() -> None:
    p = Politeness(per_host=2, delay=1.0)
    assert p.can_start(H, now=0.0)
    assert p.wait_time(H, now=0.0) == 0.0
    assert p.in_flight(H) == 0
    assert p.busy_hosts() == set()


@pytest.mark.parametrize(
    ("now", "ready", "wait"),
    [(10.0, False, 2.0), (11.5, False, 0.5), (12.0, True, 0.0), (20.0, True, 0.0)],
)
def test_delay_spaces_starts(now: float, ready: bool, wait: float) -> None:
    p = Politeness(per_host=4, delay=2.0)
    p.started(H, now=10.0)
    assert p.can_start(H, now) is ready
    assert p.wait_time(H, now) == wait


def test_delay_counts_from_the_last_start_not_the_finish() -> None:
    p = Politeness(per_host=4, delay=2.0)
    p.started(H, now=10.0)
    p.finished(H, now=11.9, status=200)
    assert p.wait_time(H, now=11.9) == pytest.approx(0.1)
    assert p.can_start(H, now=12.0)


def test_per_host_limit_makes_host_busy() -> None:
    p = Politeness(per_host=2, delay=0.0)
    p.started(H, now=0.0)
    assert p.can_start(H, now=0.0)
    p.started(H, now=0.0)
    assert p.in_flight(H) == 2
    assert not p.can_start(H, now=100.0)
    assert p.wait_time(H, now=100.0) == math.inf  # time alone will not help
    assert p.busy_hosts() == {H}
    p.finished(H, now=1.0, status=200)
    assert p.busy_hosts() == set()
    assert p.can_start(H, now=1.0)


def test_hosts_are_independent() -> None:
    p = Politeness(per_host=1, delay=5.0)
    p.started("a.test", now=0.0)
    assert not p.can_start("a.test", now=1.0)
    assert p.can_start("b.test", now=1.0)
    assert p.busy_hosts() == {"a.test"}


def test_busy_hosts_is_a_copy() -> None:
    p = Politeness(per_host=1, delay=0.0)
    p.started(H, now=0.0)
    p.busy_hosts().clear()
    assert p.busy_hosts() == {H}


@pytest.mark.parametrize(
    ("global_delay", "host_delay", "effective"),
    [(0.0, 3.0, 3.0), (1.0, 3.0, 3.0), (5.0, 3.0, 5.0), (2.0, 0.0, 2.0)],
)
def test_set_delay_raises_the_host_base_delay(
    global_delay: float, host_delay: float, effective: float
) -> None:
    p = Politeness(per_host=1, delay=global_delay)
    p.set_delay(H, host_delay)
    assert p.delay_of(H) == effective
    assert p.delay_of("other.test") == global_delay
    p.started(H, now=100.0)
    p.finished(H, now=100.0, status=200)
    assert p.wait_time(H, now=100.0) == effective


def test_set_delay_never_lowers() -> None:
    p = Politeness(per_host=1, delay=0.0)
    p.set_delay(H, 4.0)
    p.set_delay(H, 1.0)
    assert p.delay_of(H) == 4.0


@pytest.mark.parametrize("seconds", [-1.0, math.nan])
def test_set_delay_rejects_bad_values(seconds: float) -> None:
    with pytest.raises(ValueError):
        Politeness(per_host=1, delay=0.0).set_delay(H, seconds)


def run(p: Politeness, statuses: list[int | None], now: float = 0.0) -> list[float]:
    """One request per status, in turn; the host's delay after each."""
    delays = []
    for status in statuses:
        p.started(H, now)
        p.finished(H, now, status)
        delays.append(p.delay_of(H))
    return delays


@pytest.mark.parametrize(
    ("delay", "statuses", "expected"),
    [
        (0.0, [429, 429, 503, 429], [1.0, 2.0, 4.0, 8.0]),  # starts at 1s when there is no delay
        (0.5, [429, 429], [0.5 + 1.0, 0.5 + 2.0]),
        (2.0, [503, 503], [2.0 + 2.0, 2.0 + 4.0]),  # starts at the delay when it is larger
        (0.0, [429] * 10, [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0, 60.0, 60.0]),  # capped
        (0.0, [429, 429, 200, 200], [1.0, 2.0, 1.0, 0.5]),  # success halves the backoff
        (0.0, [429, 301, 404, 500], [1.0, 0.5, 0.25, 0.125]),  # any other answer counts as success
        (0.0, [429, None, None], [1.0, 1.0, 1.0]),  # no response: no change
        (0.0, [429] + [200] * 5, [1.0, 0.5, 0.25, 0.125, 0.0625, 0.0]),  # dropped below the threshold
        (0.0, [200, 200], [0.0, 0.0]),
    ],
)
def test_backoff(delay: float, statuses: list[int | None], expected: list[float]) -> None:
    assert run(Politeness(per_host=1, delay=delay), statuses) == pytest.approx(expected)


def test_backoff_starts_from_the_host_base_delay() -> None:
    p = Politeness(per_host=1, delay=0.0)
    p.set_delay(H, 3.0)
    assert run(p, [429, 429]) == [3.0 + 3.0, 3.0 + 6.0]


def test_backoff_cap_is_configurable() -> None:
    assert run(Politeness(per_host=1, delay=0.0, max_delay=5.0), [429] * 5) == [1.0, 2.0, 4.0, 5.0, 5.0]


def test_backoff_delays_the_next_start() -> None:
    p = Politeness(per_host=1, delay=1.0)
    p.started(H, now=10.0)
    p.finished(H, now=10.5, status=429)
    assert p.wait_time(H, now=10.5) == pytest.approx(1.5)  # last start 10 + delay 1 + backoff 1
    assert not p.can_start(H, now=11.9)
    assert p.can_start(H, now=12.0)


def test_a_late_send_moves_the_last_start() -> None:
    p = Politeness(per_host=1, delay=1.0)
    p.started(H, now=10.0)  # allowed to start at 10, but the engine sent it at 10.4
    p.finished(H, now=10.5, status=200, sent=10.4)
    assert p.wait_time(H, now=10.5) == pytest.approx(0.9)
    p.started(H, now=11.4)
    p.finished(H, now=11.5, status=200, sent=11.0)  # an estimate earlier than the start changes nothing
    assert p.wait_time(H, now=11.5) == pytest.approx(0.9)


def test_finished_without_started_raises() -> None:
    p = Politeness(per_host=1, delay=0.0)
    with pytest.raises(ValueError):
        p.finished(H, now=0.0, status=200)
    p.started(H, now=0.0)
    p.finished(H, now=0.0, status=200)
    with pytest.raises(ValueError):
        p.finished(H, now=0.0, status=200)


@pytest.mark.parametrize(
    ("delay", "finished_at", "kept"),
    [(0.0, 0.0, 0), (1.0, 0.5, 1), (1.0, 1.0, 0)],
)
def test_idle_slots_are_forgotten(delay: float, finished_at: float, kept: int) -> None:
    p = Politeness(per_host=1, delay=delay)
    p.started(H, now=0.0)
    p.finished(H, now=finished_at, status=200)
    assert len(p) == kept
    assert p.can_start(H, now=max(delay, finished_at))


def test_slots_with_state_are_kept() -> None:
    p = Politeness(per_host=2, delay=0.0)
    p.set_delay("slow.test", 2.0)
    run(p, [429])
    p.started("busy.test", now=0.0)
    assert len(p) == 3


@pytest.mark.parametrize(
    ("per_host", "delay", "max_delay"),
    [(0, 0.0, 60.0), (1, -1.0, 60.0), (1, math.inf, 60.0), (1, math.nan, 60.0)],
)
def test_constructor_rejects_bad_values(per_host: int, delay: float, max_delay: float) -> None:
    with pytest.raises(ValueError):
        Politeness(per_host, delay, max_delay)


def test_a_delay_longer_than_the_backoff_cap_is_kept() -> None:
    politeness = Politeness(per_host=1, delay=90.0, max_delay=60.0)
    politeness.started("h", now=0.0)
    politeness.finished("h", now=1.0, status=200)
    assert politeness.wait_time("h", now=1.0) == 89.0
