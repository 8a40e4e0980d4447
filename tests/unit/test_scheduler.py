"""The scheduler with numbers as the clock: robots first, per-host slots, delays, refusals."""

from __future__ import annotations

from crawler.discovery import HostBudget
from crawler.politeness import Politeness
from crawler.records import Job
from crawler.robots import ALLOW_ALL, DISALLOW_ALL, parse
from crawler.scheduler import Scheduler

UA = "crawler/0.1"


def jobs(*urls: str) -> list[Job]:
    return [Job(i, url, 0) for i, url in enumerate(urls)]


def scheduler(per_host: int = 2, delay: float = 0.0, obey: bool = True) -> Scheduler:
    return Scheduler(Politeness(per_host, delay), UA, capacity=10, obey_robots=obey)


def test_robots_is_fetched_once_per_origin_before_any_page() -> None:
    s = scheduler()
    s.add(jobs("http://a/1", "http://a/2", "http://b/1"))
    ready = s.take(0.0)
    assert ready.robots == ["http://a", "http://b"] and not ready.fetch
    assert s.take(0.0).robots == []  # pending, not asked again


def test_pages_start_once_rules_arrive_up_to_per_host() -> None:
    s = scheduler(per_host=2)
    s.add(jobs("http://a/1", "http://a/2", "http://a/3"))
    s.take(0.0)
    s.politeness.finished("a", 0.1, 200)
    s.set_rules("http://a", ALLOW_ALL, max_delay=30)
    assert [j.url for j in s.take(0.2).fetch] == ["http://a/1", "http://a/2"]
    assert len(s) == 1 and s.take(0.3).fetch == []
    s.politeness.finished("a", 0.4, 200)
    assert [j.url for j in s.take(0.5).fetch] == ["http://a/3"]


def test_disallowed_pages_are_refused_with_the_reason() -> None:
    s = scheduler()
    s.add(jobs("http://a/private/x", "http://b/y"))
    s.set_rules("http://a", parse("User-agent: *\nDisallow: /private/"), max_delay=30)
    s.set_rules("http://b", DISALLOW_ALL, max_delay=30, refusal="timeout (at robots.txt)")
    ready = s.take(0.0)
    assert [(j.url, why) for j, why in ready.refused] == [
        ("http://a/private/x", "blocked: robots.txt"),
        ("http://b/y", "timeout (at robots.txt)"),
    ]


def test_crawl_delay_spaces_request_starts_and_is_capped() -> None:
    s = scheduler(per_host=5)
    s.set_rules("http://a", parse("User-agent: *\nCrawl-delay: 100"), max_delay=3)
    s.add(jobs("http://a/1", "http://a/2"))
    assert len(s.take(0.0).fetch) == 1
    assert s.wait_time(1.0) == 2.0
    assert s.take(2.9).fetch == []
    assert len(s.take(3.0).fetch) == 1


def test_ignoring_robots_fetches_no_robots_txt() -> None:
    s = scheduler(obey=False)
    s.add(jobs("http://a/1"))
    ready = s.take(0.0)
    assert ready.robots == [] and [j.url for j in ready.fetch] == ["http://a/1"]


def test_crowded_hosts_counts_buffered_and_in_flight() -> None:
    s = scheduler(per_host=1, obey=False)
    s.add(jobs("http://a/1", "http://a/2", "http://b/1"))
    assert s.crowded_hosts(2) == {"a"}
    s.take(0.0)  # a/1 and b/1 start; a/2 waits for a's slot
    assert s.crowded_hosts(2) == {"a"} and s.crowded_hosts(3) == set()
    assert [j.url for j in s.drain()] == ["http://a/2"] and s.crowded_hosts(1) == set()


def test_host_budget_admits_up_to_the_limit_per_host_and_ignores_repeats() -> None:
    budget = HostBudget(2)
    budget.note("http://a/", "a")  # a claimed seed counts
    assert budget.admit("http://a/", "a") is False  # already counted
    assert budget.admit("http://a/1", "a") is True and budget.spent("a")
    assert budget.admit("http://a/2", "a") is False
    assert budget.admit("http://b/1", "b") is True and not budget.spent("b")


def test_host_budget_zero_is_no_limit() -> None:
    budget = HostBudget(0)
    assert all(budget.admit(f"http://a/{i}", "a") for i in range(1000)) and not budget.spent("a")


class CountingPoliteness(Politeness):
    """Politeness that counts how often a scheduler asks whether a host may start."""

    looks = 0

    def can_start(self, host: str, now: float) -> bool:
        self.looks += 1
        return super().can_start(host, now)


def test_a_pass_looks_only_at_hosts_that_may_start() -> None:
    politeness = CountingPoliteness(per_host=1, delay=0.0)
    s = Scheduler(politeness, UA, capacity=1000, obey_robots=False)
    s.add(jobs(*[f"http://h{h}/{i}" for i in range(10) for h in range(50)]))
    assert sorted(j.url for j in s.take(0.0).fetch) == sorted(f"http://h{h}/0" for h in range(50))
    politeness.looks = 0
    assert s.take(0.1).fetch == [] and politeness.looks == 0  # every host busy: none looked at
    assert s.wait_time(0.1) == float("inf")
    politeness.finished("h7", 0.2, 200)
    assert s.wait_time(0.2) == 0.0
    assert [j.url for j in s.take(0.2).fetch] == ["http://h7/1"] and politeness.looks == 2
    assert len(s) == 449


def test_a_host_waiting_for_its_delay_sleeps_until_then() -> None:
    politeness = CountingPoliteness(per_host=2, delay=1.0)
    s = Scheduler(politeness, UA, capacity=10, obey_robots=False)
    s.add(jobs("http://a/1", "http://a/2", "http://a/3"))
    assert [j.url for j in s.take(0.0).fetch] == ["http://a/1"]
    assert s.wait_time(0.25) == 0.75
    politeness.looks = 0
    assert s.take(0.5).fetch == [] and politeness.looks == 0
    assert [j.url for j in s.take(1.0).fetch] == ["http://a/2"]
    politeness.finished("a", 1.5, 200)  # woken, but its delay still holds: asleep again until 2.0
    assert s.take(1.5).fetch == [] and s.wait_time(1.5) == 0.5
    assert [j.url for j in s.take(2.0).fetch] == ["http://a/3"] and len(s) == 0


def test_a_host_waiting_for_robots_txt_is_woken_by_its_rules() -> None:
    s = scheduler(per_host=2)
    s.add(jobs("http://a/1", "http://a/2"))
    assert s.take(0.0).robots == ["http://a"]
    s.politeness.finished("a", 0.1, 404)
    assert s.take(0.1).robots == [] and s.wait_time(0.1) == float("inf")  # robots.txt still pending
    s.set_rules("http://a", ALLOW_ALL, max_delay=30)
    assert s.wait_time(0.2) == 0.0
    assert [j.url for j in s.take(0.2).fetch] == ["http://a/1", "http://a/2"]
