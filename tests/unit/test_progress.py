"""The progress line, drawn into a buffer with a fake clock: one rate, the frontier's queued count (read
only when drawn), a word while robots.txt is awaited, the final numbers on close."""

from __future__ import annotations

import io

from crawler.progress import REFRESH_SECONDS, Progress


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def last_line(out: io.StringIO) -> str:
    return out.getvalue().replace("\r", "\n").strip().splitlines()[-1]


def test_one_rate_and_the_queued_count_read_only_when_drawn() -> None:
    out, clock, reads = io.StringIO(), Clock(), []

    def queued() -> int:
        reads.append(clock.now)
        return 42

    progress = Progress(enabled=True, file=out, clock=clock)
    for page in range(1, 11):
        clock.now += REFRESH_SECONDS / 4
        progress.update(page, 1, queued)
    line = last_line(out)
    assert "queued=42" in line and "errors=1" in line and "buffered" not in line
    assert line.count("/s") == 1 and "rate=" not in line
    assert len(reads) <= 4  # 10 updates over 1.25 s: drawn at most every 0.5 s


def test_a_word_while_robots_txt_is_awaited_and_none_once_pages_arrive() -> None:
    out, clock = io.StringIO(), Clock()
    progress = Progress(enabled=True, file=out, clock=clock)
    progress.update(0, 0, lambda: 3, {"http://slow.test", "http://b.test"})
    clock.now += 1
    progress.update(0, 0, lambda: 3, {"http://slow.test", "http://b.test"})
    assert "waiting for http://b.test/robots.txt (+1)" in last_line(out)
    clock.now += 1
    progress.update(5, 0, lambda: 3, {"http://slow.test"})
    assert "waiting" not in last_line(out)


def test_close_draws_the_final_numbers_without_reading_the_frontier() -> None:
    out, clock = io.StringIO(), Clock()
    progress = Progress(enabled=True, file=out, clock=clock)
    progress.update(1, 0, lambda: 7)
    progress.update(99, 2, lambda: 0)  # within the refresh interval: not drawn yet

    def gone() -> int:
        raise AssertionError("the frontier is read at close")

    progress.update(100, 3, gone)
    progress.close()
    line = last_line(out)
    assert line.startswith("100 pages"), line
    assert "errors=3" in line and "queued=7" in line


def test_a_resumed_crawls_earlier_pages_are_not_in_the_rate() -> None:
    """The first draw's count is the baseline: 10,000 pages from earlier runs are not 10,000 pages at once."""
    out = io.StringIO()
    Progress(enabled=True, file=out, clock=Clock()).update(10_000, 0, lambda: 1)
    line = last_line(out)
    assert line.startswith("10000 pages") and "? pages/s" in line, line


def test_disabled_draws_nothing_and_reads_nothing() -> None:
    progress = Progress(enabled=False)

    def never() -> int:
        raise AssertionError("read")

    progress.update(1, 0, never, {"http://a.test"})
    progress.close()
