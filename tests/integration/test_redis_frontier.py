"""RedisFrontier's own promises, on a private redis-server: leases and fencing, global politeness across
instances (as across workers), atomic dedup, losing the state and rebuilding it, the memory a URL costs;
and a Hypothesis state machine of its scripts against a pure-Python model of the same rules."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from crawler.frontier import FrontierLost
from crawler.frontier.redis import RedisFrontier

pytest_plugins = ["conftest_redis"]
KEY = "crawl:test"


def frontier(server, worker: str = "w1", lease: float = 60.0, per_host: int = 100, delay: float = 0.0,
             create: bool = True) -> RedisFrontier:
    shared = RedisFrontier(server.client, KEY, worker, lease)
    if create:
        shared.rebuild([], [], per_host, delay)
    return shared


def urls(host: str, n: int, depth: int = 0) -> list[tuple[str, str, int]]:
    return [(f"http://{host}/{i}", host, depth) for i in range(n)]


def wait_until(condition, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "not within the time allowed"
        time.sleep(0.02)


def test_a_late_ack_is_refused_and_the_new_holder_settles(redis_server) -> None:
    a = frontier(redis_server, "a", lease=0.2)
    b = frontier(redis_server, "b", create=False)
    a.add(urls("x.test", 1))
    [mine] = a.claim(5)
    wait_until(lambda: b.recover() == 1)  # a's lease expired: a "stalled"
    [theirs] = b.claim(5)
    assert theirs.url == mine.url and theirs.lease != mine.lease
    a.done([mine])
    assert a.stale == 1 and b.status() == (0, 1)
    b.done([theirs])
    assert b.stale == 0 and b.status() == (0, 0)


def test_renew_keeps_held_leases_and_names_the_lost(redis_server) -> None:
    a = frontier(redis_server, "a", lease=0.3)
    b = frontier(redis_server, "b", create=False)
    a.add(urls("x.test", 2))
    first = a.claim(2)
    wait_until(lambda: b.recover() == 2)
    [taken] = b.claim(1)  # b holds one; the other is queued again
    assert {job.url for job in a.renew(first)} == {"http://x.test/0", "http://x.test/1"}
    [again] = a.claim(1)
    assert again.url != taken.url and a.renew([again]) == [] and b.renew([taken]) == []


def test_the_per_host_cap_holds_across_workers(redis_server) -> None:
    a = frontier(redis_server, "a", per_host=2)
    b = frontier(redis_server, "b", create=False)
    a.add(urls("x.test", 10) + urls("y.test", 1))
    first = a.claim(10)
    assert sorted(job.url for job in first) == ["http://x.test/0", "http://x.test/1", "http://y.test/0"]
    assert b.claim(10) == []
    a.release([(first[0], 0.0)])  # a fetch ended: its slot is free for anyone
    assert [job.url for job in b.claim(10)] == ["http://x.test/2"]


def test_a_released_host_rests_before_the_next_claim(redis_server) -> None:
    a = frontier(redis_server, "a", per_host=1, delay=0.2)
    a.add(urls("x.test", 2))
    [job] = a.claim(5)
    a.release([(job, 0.0)])
    released = time.monotonic()
    assert a.claim(5) == [] and 0 < a.due_in() <= 0.2  # type: ignore[operator]
    wait_until(lambda: bool(a.claim(5)))
    assert time.monotonic() - released >= 0.2 - 0.01
    # a longer rest asked for (Retry-After, Crawl-delay) is kept whatever the delay
    b = RedisFrontier(redis_server.client, KEY, "b")
    b.add(urls("z.test", 2))
    [z] = b.claim(1, exclude_hosts={"x.test"})
    b.release([(z, 0.5)])
    assert b.claim(5, exclude_hosts={"x.test"}) == [] and b.due_in() > 0.3  # type: ignore[operator]


def test_excluded_hosts_are_skipped_and_left_ready(redis_server) -> None:
    a = frontier(redis_server)
    a.add(urls("x.test", 3) + urls("y.test", 1))
    assert [job.url for job in a.claim(5, exclude_hosts={"x.test"})] == ["http://y.test/0"]
    assert len(a.claim(5)) == 3


def test_eight_workers_adding_the_same_urls_queue_each_once(redis_server) -> None:
    workers = [frontier(redis_server, f"w{i}", create=(i == 0)) for i in range(8)]
    found = urls("x.test", 1000)
    with ThreadPoolExecutor(8) as pool:
        added = list(pool.map(lambda w: w.add(found), workers))
    assert sum(added) == 1000 and workers[0].pending() == 1000


def test_a_flushed_redis_raises_frontier_lost_and_a_rebuild_fences_old_tokens(redis_server) -> None:
    a = frontier(redis_server)
    a.add(urls("x.test", 3))
    held = a.claim(1)
    redis_server.client.flushall()
    with pytest.raises(FrontierLost):
        a.claim(1)
    assert a.rebuild(urls("x.test", 3)[1:], ["http://x.test/0"], per_host=100, delay=0.0)
    a.done(held)
    assert a.stale == 1  # the token of the old epoch is refused
    assert a.add(urls("x.test", 3)) == 0 and a.pending() == 2


def test_only_one_worker_rebuilds_at_a_time(redis_server) -> None:
    a = frontier(redis_server, create=False)
    redis_server.client.set(f"{KEY}:rebuild", "someone", px=10_000)
    assert not a.rebuild(urls("x.test", 1), [], 1, 0.0) and not a.exists()


def test_memory_per_url(redis_server) -> None:
    """What the exact dedup and the queues cost; the module docstring quotes the figure."""
    a = frontier(redis_server)
    before = redis_server.client.info("memory")["used_memory"]
    a.add(urls("x.test", 100_000))
    queued = (redis_server.client.info("memory")["used_memory"] - before) / 100_000
    while jobs := a.claim(500):
        a.done(jobs)
    done = (redis_server.client.info("memory")["used_memory"] - before) / 100_000
    print(f"bytes per URL: {queued:.0f} queued (dedup + queue), {done:.0f} done (dedup only)")
    assert done < 100 and queued < 200  # (at this size most of it is the buckets' own overhead)


class Model:
    """The frontier's rules in plain Python: delay 0, one host cap, leases that never expire."""

    def __init__(self, per_host: int) -> None:
        self.per_host = per_host
        self.queued: dict[str, list[str]] = {}
        self.leased: dict[str, str] = {}  # url -> host
        self.released: set[str] = set()  # leased URLs whose fetch ended: their host's slot is free
        self.seen: set[str] = set()

    def add(self, entries: list[tuple[str, str, int]]) -> int:
        new = 0
        for url, host, _ in entries:
            if url not in self.seen:
                self.seen.add(url)
                self.queued.setdefault(host, []).append(url)
                new += 1
        return new

    def claimable(self) -> int:
        inflight: dict[str, int] = {}
        for url, host in self.leased.items():
            if url not in self.released:
                inflight[host] = inflight.get(host, 0) + 1
        return sum(min(len(q), max(0, self.per_host - inflight.get(h, 0))) for h, q in self.queued.items())


class FrontierMachine(RuleBasedStateMachine):
    """Random adds, claims, acks, give-backs and releases: the scripts agree with the model."""

    @initialize()
    def start(self) -> None:
        self.server.client.flushall()
        self.shared = RedisFrontier(self.server.client, KEY, "w1")
        self.shared.rebuild([], [], per_host=2, delay=0.0)
        self.model = Model(per_host=2)
        self.jobs: dict[str, object] = {}  # url -> Job held

    @rule(hosts=st.lists(st.sampled_from("abc"), min_size=1, max_size=4), n=st.integers(0, 3))
    def add(self, hosts: list[str], n: int) -> None:
        entries = [(f"http://{h}.test/{n + i}", f"{h}.test", 0) for i, h in enumerate(hosts)]
        assert self.shared.add(entries) == self.model.add(entries)

    @rule(n=st.integers(1, 5))
    def claim(self, n: int) -> None:
        expected = min(n, self.model.claimable())
        jobs = self.shared.claim(n)
        assert len(jobs) == expected
        for job in jobs:
            host = job.url.split("/")[2]
            assert job.url not in self.model.leased, "claimed twice while leased"
            assert job.url == self.model.queued[host].pop(0), "not the host's oldest"
            self.model.leased[job.url] = host
            self.jobs[job.url] = job

    @rule(data=st.data())
    def ack(self, data) -> None:  # type: ignore[no-untyped-def]
        if self.jobs:
            url = data.draw(st.sampled_from(sorted(self.jobs)))
            self.shared.done([self.jobs.pop(url)])  # type: ignore[list-item]
            del self.model.leased[url]
            self.model.released.discard(url)

    @rule(data=st.data())
    def give_back(self, data) -> None:  # type: ignore[no-untyped-def]
        if self.jobs:
            url = data.draw(st.sampled_from(sorted(self.jobs)))
            self.shared.give_back([self.jobs.pop(url)])  # type: ignore[list-item]
            host = self.model.leased.pop(url)
            self.model.queued[host].insert(0, url)
            self.model.released.discard(url)

    @rule(data=st.data())
    def release(self, data) -> None:  # type: ignore[no-untyped-def]
        """A released job frees its host's slot in Redis; the model counts slots by unreleased leases."""
        unreleased = sorted(set(self.jobs) - self.model.released)
        if unreleased:
            url = data.draw(st.sampled_from(unreleased))
            self.shared.release([(self.jobs[url], 0.0)])  # type: ignore[list-item]
            self.model.released.add(url)

    @invariant()
    def counts_agree(self) -> None:
        if hasattr(self, "shared"):
            queued = sum(len(q) for q in self.model.queued.values())
            assert self.shared.status() == (queued, len(self.model.leased))
            assert self.shared.stale == 0


def test_the_scripts_follow_the_model(redis_server) -> None:
    FrontierMachine.server = redis_server  # type: ignore[attr-defined]
    machine = FrontierMachine.TestCase
    machine.settings = settings(max_examples=40, stateful_step_count=30, deadline=None)
    machine("runTest").runTest()
