"""Hostile hosts, end to end: the real CLI, on both engines, against servers that each play one part:
a slow host and one with a Crawl-delay (per-host concurrency, spacing), hosts answering 503 and 429 (the
slow-down), hosts whose robots.txt fails, hangs, is missing or redirects, a permissive crawl (no robots.txt,
private addresses allowed), and endless calendars stopped by page budgets. Like test_hostile.py, each crawl
runs once per engine and many small tests read its rows and its servers' logs (request gaps, concurrency).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hostile_site import TEXT, Run, calendar, crawl, gaps, paths, plain
from servers import redirect, serve, static

EARLY = 0.1  # a request may reach the server this much "early" relative to the last (scheduling jitter)


@pytest.fixture(scope="module", params=["gevent", "threads"])
def engine(request: pytest.FixtureRequest) -> str:
    """Both engines; module-scoped here, so each crawl runs once per engine and many tests read it."""
    return str(request.param)


@pytest.fixture(scope="module")
def politeness(engine: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    """--per-host 3: a slow host (12 pages of 300 ms) beside a host whose robots.txt sets Crawl-delay 0.4."""
    with serve() as slow, serve("127.0.0.2") as delayed:
        seeds = plain(slow, [f"/sleep/300?n={i}" for i in range(12)])
        seeds += plain(delayed, [f"/p?n={i}" for i in range(3)],
                       static(b"User-agent: *\nCrawl-delay: 0.4\n", content_type=TEXT))
        run = crawl(tmp_path_factory.mktemp("polite") / "crawl.db", engine, seeds, "--per-host", "3",
                    "--concurrency", "16", "--retries", "0", "--parse-workers", "0")
    run.servers = {"slow": slow, "delayed": delayed}
    print(f"\n[{engine}] politeness: max in flight {slow.max_in_flight}, "
          f"Crawl-delay gaps {[round(g, 3) for g in gaps(delayed)]}")
    yield run


@pytest.fixture(scope="module")
def throttled(engine: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    """--per-host 1 --delay 0.3: one host answers a 503, another a 429, then plain pages."""
    with serve() as h503, serve("127.0.0.2") as h429:
        seeds = plain(h503, ["/status/503", "/p?n=1", "/p?n=2", "/p?n=3"])
        seeds += plain(h429, ["/status/429", "/p?n=1", "/p?n=2"])
        run = crawl(tmp_path_factory.mktemp("throttled") / "crawl.db", engine, seeds, "--per-host", "1",
                    "--delay", "0.3", "--retries", "0", "--parse-workers", "0")
    run.servers = {"503": h503, "429": h429}
    for name in run.servers:
        print(f"\n[{engine}] after a {name}: gaps {[round(g, 3) for g in gaps(run.servers[name])]}")
    yield run


@pytest.fixture(scope="module")
def robots(engine: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    """robots.txt that fails (500, hang), is missing (404), is 30 MB or 2 MiB (over --max-bytes 1 MiB: only
    the first 500 KiB are read), or redirects (same origin, or to a private host)."""
    with serve() as s500, serve() as s404, serve() as shang, serve() as shuge, serve() as sprivate, \
            serve() as smoved, serve() as trap, serve() as slong:
        trap.mount("/robots.txt", static(b"User-agent: *\nDisallow: /\n", content_type=TEXT))
        smoved.mount("/real-robots.txt", static(b"User-agent: *\nDisallow: /p\n", content_type=TEXT))
        seeds = plain(s500, ["/p"], static(b"oops", 500)) + plain(s404, ["/p"])
        seeds += plain(shang, ["/p"], "/hang")
        seeds += plain(shuge, ["/p"], "/huge-chunked")
        seeds += plain(slong, ["/p"], static(b"User-agent: *\nDisallow: /p\n" + b"#" * 2**21,
                                                   content_type=TEXT))
        seeds += plain(sprivate, ["/p"], redirect(f"http://localhost:{trap.port}/robots.txt"))
        seeds += plain(smoved, ["/p"], redirect("/real-robots.txt"))
        run = crawl(tmp_path_factory.mktemp("robots") / "crawl.db", engine, seeds, "--timeout", "1",
                    "--retries", "0", "--per-host", "8", "--parse-workers", "0", "--max-bytes", str(2**20))
    run.servers = {"500": s500, "404": s404, "hang": shang, "huge": shuge, "private": sprivate,
                   "moved": smoved, "trap": trap, "long": slong}
    yield run


@pytest.fixture(scope="module")
def permissive(engine: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    """--ignore-robots --allow-private --scope all: robots.txt says Disallow: / and links go to localhost."""
    with serve() as site, serve() as other:
        targets = [f"http://localhost:{other.port}/direct", f"http://2130706433:{other.port}/decimal"]
        seeds = plain(site, ["/p", "/to-localhost", *targets], static(b"User-agent: *\nDisallow: /\n"))
        site.mount("/to-localhost", redirect(f"http://localhost:{other.port}/via-redirect"))
        run = crawl(tmp_path_factory.mktemp("permissive") / "crawl.db", engine, seeds, "--ignore-robots",
                    "--allow-private", "--scope", "all", "--parse-workers", "0")
    run.servers = {"site": site, "other": other}
    yield run


@pytest.fixture(scope="module")
def budgets(engine: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Run]]:
    """Endless calendars without --max-depth: stopped by --max-pages-per-host 3 (two hosts), or by
    --max-pages 5."""
    runs = {}
    for option, value, hosts in (("--max-pages-per-host", "3", 2), ("--max-pages", "5", 1)):
        with serve() as first, serve("127.0.0.2") as second:
            servers = [first, second][:hosts]
            for server in servers:
                server.mount("/cal/", calendar)
            seeds = [server.url("/cal/2024/01") for server in servers]
            runs[option] = crawl(tmp_path_factory.mktemp("budget") / "crawl.db", engine, seeds, option, value,
                                 "--parse-workers", "0")
        runs[option].servers = {str(i): server for i, server in enumerate(servers)}
    yield runs


CRAWLS = ["politeness", "throttled", "robots", "permissive", "budgets"]
MAX_SECONDS = {"politeness": 15, "throttled": 15, "robots": 12, "permissive": 12, "budgets": 20}


@pytest.mark.parametrize("name", CRAWLS)
def test_every_crawl_finishes_with_exit_0_in_bounded_time(request: pytest.FixtureRequest, engine: str,
                                                          name: str) -> None:
    result = request.getfixturevalue(name)  # `engine` above: the crawl fixtures are parametrized by it
    for run in result.values() if isinstance(result, dict) else [result]:
        assert run.returncode == 0, run.stderr
        assert run.rows("SELECT status FROM crawls") == [("finished",)]
        assert run.seconds < MAX_SECONDS[name], run.seconds


# --- 5. robots.txt ----------------------------------------------------------------------------------


def test_robots_5xx_disallows_all_with_a_reason(robots: Run) -> None:
    server = robots.servers["500"]
    assert robots.page(server.url("/"))["error"] == "blocked: robots.txt unavailable (HTTP 500)"
    assert paths(server) == ["/robots.txt"]


def test_robots_unreachable_disallows_all_with_a_reason(robots: Run) -> None:
    """robots.txt gets the deadline of pages; failing it means disallow all, and the rows say what failed."""
    server = robots.servers["hang"]
    assert robots.page(server.url("/"))["error"] == "timeout (at robots.txt)"
    assert paths(server) == ["/robots.txt"]


def test_robots_over_the_cap_is_read_to_500_kib(robots: Run) -> None:
    """--max-bytes (1 MiB here) or RFC 9309's 500 KiB, whichever is less, cuts a long robots.txt: what was
    read is obeyed, the rest is not downloaded."""
    long, huge = robots.servers["long"], robots.servers["huge"]
    assert robots.page(long.url("/p"))["error"] == "blocked: robots.txt"
    assert robots.page(long.url("/"))["status"] == 200
    assert robots.page(huge.url("/p"))["status"] == 200  # 500 KiB of zero bytes: no rules
    assert sorted(paths(long)) == ["/", "/robots.txt"]


def test_robots_404_allows_all(robots: Run) -> None:
    server = robots.servers["404"]
    assert [robots.page(server.url(p))["status"] for p in ("/", "/p")] == [200, 200]
    assert sorted(paths(server)) == ["/", "/p", "/robots.txt"]


def test_robots_redirects_are_followed_but_not_to_a_private_address(robots: Run) -> None:
    moved = robots.servers["moved"]
    assert robots.page(moved.url("/p"))["error"] == "blocked: robots.txt"
    assert len(moved.hits("/real-robots.txt")) == 1
    assert robots.servers["trap"].log == []  # localhost is not the seed's host: not asked
    assert robots.page(robots.servers["private"].url("/p"))["status"] == 200  # an unfollowed 3xx allows all


def test_ignore_robots_fetches_no_robots_txt(permissive: Run) -> None:
    site = permissive.servers["site"]
    assert site.hits("/robots.txt") == [] and permissive.servers["other"].hits("/robots.txt") == []
    assert permissive.page(site.url("/p"))["status"] == 200  # despite Disallow: /


# --- 6. politeness ----------------------------------------------------------------------------------


def test_per_host_caps_the_requests_in_flight_seen_by_the_server(politeness: Run) -> None:
    assert politeness.servers["slow"].max_in_flight == 3


def test_crawl_delay_spaces_request_starts(politeness: Run) -> None:
    delayed = politeness.servers["delayed"]
    assert len(delayed.log) == 5 and min(gaps(delayed)) >= 0.4 - EARLY, gaps(delayed)


def test_other_hosts_proceed_while_one_is_slow(politeness: Run) -> None:
    slow, delayed = politeness.servers["slow"], politeness.servers["delayed"]
    busy = (slow.hits("/")[0].at, slow.log[-1].at + 0.3)  # the last wave of /sleep/300 ends 0.3 s later
    assert sum(busy[0] < hit.at < busy[1] for hit in delayed.log) >= 2


@pytest.mark.parametrize("status", ["503", "429"])
def test_delay_spaces_starts_and_a_429_or_503_slows_the_host_down(throttled: Run, status: str) -> None:
    server = throttled.servers[status]
    assert paths(server)[:4] == ["/robots.txt", "/", f"/status/{status}", "/p?n=1"]
    spacing = gaps(server)
    assert min(spacing) >= 0.3 - EARLY  # --delay 0.3
    after = spacing[2:]  # the gaps after the throttling answer: 1 s backoff + delay, then halving
    # (a late arrival lengthens one gap and shortens the next: their sum only sees the ends' jitter)
    assert after[0] >= 1.3 - EARLY and after[0] + after[1] >= 1.3 + 0.8 - EARLY, spacing
    assert after[0] > after[1] + 0.2, spacing


# --- 9. traps: budgets ------------------------------------------------------------------------------


def test_max_pages_per_host_is_a_per_host_budget(budgets: dict[str, Run]) -> None:
    run = budgets["--max-pages-per-host"]
    for server in run.servers.values():
        assert len(server.hits("/robots.txt")) == 1 and len(server.log) == 1 + 3
        assert run.rows("SELECT count(*) FROM pages WHERE url LIKE ?", server.base + "/%") == [(3,)]


def test_max_pages_is_exact_on_an_endless_calendar(budgets: dict[str, Run]) -> None:
    run = budgets["--max-pages"]
    assert run.rows("SELECT count(*) FROM pages") == [(5,)]
    assert len([hit for hit in run.servers["0"].log if hit.path.startswith("/cal/")]) == 5


# --- 10. private addresses --------------------------------------------------------------------------


def test_allow_private_lifts_the_rule(permissive: Run) -> None:
    assert sorted(paths(permissive.servers["other"])) == ["/decimal", "/direct", "/via-redirect"]


