"""Hostile and broken servers, end to end: the real CLI, on both engines, against one hostile site.

The site (tests/hostile_site.py) links to every adversarial route of tests/servers.py, to redirect chains,
loops and private addresses, to pages in several encodings, to non-HTML and broken HTML, and to traps. It is
crawled once per engine (module-scoped fixtures); many small tests then read the rows (sqlite3), the
servers' logs (hits, User-Agent) and what was measured around the process (run time, peak memory of the
process tree). test_hostile_hosts.py covers what needs hosts of their own: politeness, robots.txt
failures, budgets. Measurements are printed (`pytest -s`) for the record.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hostile_site import (
    ADVERSARIAL,
    AGENT,
    BROKEN_LINKS,
    ENCODINGS,
    GARBAGE,
    LONG,
    NEVER,
    PDF,
    PNG,
    ROBOTS,
    TIMEOUTS,
    TOO_LARGE,
    MiB,
    Run,
    build_hostile,
    crawl,
    private_urls,
)
from servers import gzip_bomb, serve

SLACK = 0.7  # seconds of scheduling slack on a 2-core CI box
EARLY = 0.1  # a request may reach the server this much "early" relative to the last (scheduling jitter)


@pytest.fixture(scope="module", params=["gevent", "threads"])
def engine(request: pytest.FixtureRequest) -> str:
    """Both engines; module-scoped here, so each crawl runs once per engine and many tests read it."""
    return str(request.param)


@pytest.fixture(scope="module")
def hostile(engine: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    """Every adversarial route, redirect, private address, encoding, non-HTML body and trap, in one crawl.
    --timeout 1 --retries 1; --scope all, so only the private-address rule keeps other hosts out."""
    gzip_bomb()  # built before the clock starts: it costs the server ~0.5 s of CPU
    with serve() as main, serve() as other, serve("127.0.0.2") as second:
        seeds = build_hostile(main, other, second)
        run = crawl(tmp_path_factory.mktemp("hostile") / "crawl.db", engine, seeds, "--scope", "all",
                    "--max-depth", "3", "--timeout", "1", "--retries", "1", "--per-host", "16",
                    "--concurrency", "32", "--parse-workers", "1", "--user-agent", AGENT)
    run.servers = {"main": main, "other": other, "second": second}
    print(f"\n[{engine}] hostile: {run.seconds:.1f} s, peak RSS of the tree {run.peak_rss / MiB:.0f} MiB")
    yield run


def test_the_crawl_finishes_with_exit_0_in_bounded_time(hostile: Run) -> None:
    assert hostile.returncode == 0, hostile.stderr
    assert hostile.rows("SELECT status FROM crawls") == [("finished",)]
    assert hostile.seconds < 20, hostile.seconds  # the slowest route gives up after ~3 s


# --- 1. deadline ------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", TIMEOUTS)
def test_no_answer_stall_and_trickle_end_as_timeouts_within_the_deadline(hostile: Run, path: str) -> None:
    """--timeout 1 per attempt, --retries 1: two attempts and one backoff of 0.5-1.0 s."""
    row = hostile.page(hostile.servers["main"].url(path))
    assert (row["error"], row["text"], row["length"]) == ("timeout", None, 0)
    assert row["status"] == (None if path in ("/hang", "/trickle-headers") else 200)
    assert len(hostile.servers["main"].hits(path)) == 2
    assert 2000 <= row["elapsed_ms"] <= 1000 * (2 + 1.0 + SLACK), row["elapsed_ms"]
    print(f"{path}: gave up after {row['elapsed_ms']} ms")


def test_reset_mid_headers_is_a_retried_connection_error(hostile: Run) -> None:
    row = hostile.page(hostile.servers["main"].url("/reset"))
    assert row["status"] is None and row["error"].startswith("connection error: ")
    assert len(hostile.servers["main"].hits("/reset")) == 2


# --- 2. byte cap ------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", TOO_LARGE)
def test_huge_bodies_and_the_gzip_bomb_are_too_large_rows_without_text(hostile: Run, path: str) -> None:
    row = hostile.page(hostile.servers["main"].url(path))
    assert (row["status"], row["error"]) == (200, f"too large: more than {10 * MiB} bytes")
    assert (row["text"], row["title"], row["length"]) == (None, None, 0)
    assert len(hostile.servers["main"].hits(path)) == 1  # "too large" is not retried


def test_memory_of_the_whole_process_tree_stays_bounded(hostile: Run) -> None:
    assert 0 < hostile.peak_rss < 500 * MiB, f"{hostile.peak_rss / MiB:.0f} MiB"


# --- 3. retries -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("path", "status", "hits"), [("/always-500", 500, 2), ("/404", 404, 1),
                                                      ("/flaky?fails=1", 200, 2), ("/429?after=2", 200, 2)])
def test_retries_on_5xx_and_429_but_not_other_4xx(hostile: Run, path: str, status: int, hits: int) -> None:
    row = hostile.page(hostile.servers["main"].url(path))
    assert (row["status"], row["error"]) == (status, None)
    assert len(hostile.servers["main"].hits(path)) == hits


def test_retry_after_is_honoured(hostile: Run) -> None:
    first, second = hostile.servers["main"].hits("/429?after=2")
    assert 2.0 - EARLY <= second.at - first.at < 2.0 + SLACK  # Retry-After: 2, not the 0.5-1 s backoff


# --- 4. redirects -----------------------------------------------------------------------------------


def test_a_redirect_chain_is_followed_hop_by_hop_to_its_final_url(hostile: Run) -> None:
    main = hostile.servers["main"]
    row = hostile.page(main.url("/hop/1"))
    assert (row["status"], row["error"], row["final_url"], row["title"]) == (200, None, main.url("/landing"),
                                                                            "Landing")
    assert [len(main.hits(p)) for p in ("/hop/2", "/hop/3", "/landing")] == [1, 1, 1]
    assert main.url("/landing") not in hostile.urls()  # its content is the row of /hop/1


def test_a_redirect_target_also_linked_directly_is_fetched_once(hostile: Run) -> None:
    main = hostile.servers["main"]
    assert len(main.hits("/ok?direct")) == 1
    assert hostile.page(main.url("/ok?direct"))["status"] == 200
    assert hostile.page(main.url("/to-ok"))["final_url"] == main.url("/ok?direct")


def test_loops_and_long_chains_end_as_error_rows(hostile: Run) -> None:
    main = hostile.servers["main"]
    loop = hostile.page(main.url("/loop-a"))
    assert (loop["status"], loop["error"]) == (301, f"redirect loop: {main.url('/loop-a')}")
    chain = hostile.page(main.url("/redirect/12"))
    assert (chain["status"], chain["error"]) == (302, "too many redirects: more than 10")
    assert len([hit for hit in main.log if hit.path.startswith("/redirect/")]) == 11  # /12 ... /2, once
    assert [len(main.hits(p)) for p in ("/loop-a", "/loop-b")] == [1, 1]  # the chain is not re-entered


def test_a_redirect_into_robots_disallowed_space_is_not_followed(hostile: Run) -> None:
    main = hostile.servers["main"]
    row = hostile.page(main.url("/to-private"))
    assert (row["status"], row["final_url"]) == (302, main.url("/private/secret"))
    assert hostile.page(main.url("/private/secret"))["error"] == "blocked: robots.txt"


# --- 5. robots.txt ----------------------------------------------------------------------------------


def test_robots_txt_is_fetched_once_and_matched_by_product_token(hostile: Run) -> None:
    main = hostile.servers["main"]
    assert len(main.hits("/robots.txt")) == 1 and b"Disallow: /\n" in ROBOTS  # "*" may not crawl at all
    assert len(hostile.urls()) > 40  # ... but "hostile-test" may


def test_every_request_carries_the_user_agent(hostile: Run) -> None:
    assert {hit.agent for hit in hostile.servers["main"].log} == {AGENT}


# --- 7. charsets ------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ENCODINGS)
def test_titles_and_text_are_decoded_exactly(hostile: Run, path: str) -> None:
    _, title, text, codec = ENCODINGS[path]
    row = hostile.page(hostile.servers["main"].url(path))
    assert (row["title"], row["text"], row["encoding"]) == (title, text, codec)


# --- 8. non-HTML and broken HTML --------------------------------------------------------------------


@pytest.mark.parametrize(("path", "kind", "body"),
                         [("/doc.pdf", "application/pdf", PDF), ("/img.png", "image/png", PNG)])
def test_non_html_gets_a_row_with_type_and_length_and_is_not_parsed(hostile: Run, path: str, kind: str,
                                                                    body: bytes) -> None:
    row = hostile.page(hostile.servers["main"].url(path))
    assert (row["status"], row["content_type"], row["length"]) == (200, kind, len(body))
    assert (row["text"], row["title"], row["encoding"]) == (None, None, None)
    assert hostile.rows("SELECT count(*) FROM links WHERE page_id = ?", row["id"]) == [(0,)]


def test_broken_html_yields_only_real_http_links(hostile: Run) -> None:
    main = hostile.servers["main"]
    row = hostile.page(main.url("/broken"))
    assert (row["status"], row["error"], row["title"]) == (200, None, "Broken page")
    found = {url for (url,) in hostile.rows("SELECT url FROM links WHERE page_id = ?", row["id"])}
    assert found == {main.url(p) for p in BROKEN_LINKS}
    assert len(main.hits("/padded?x=1")) == 1


def test_binary_garbage_served_as_html_is_stored_without_a_crash(hostile: Run) -> None:
    row = hostile.page(hostile.servers["main"].url("/garbage"))
    assert (row["status"], row["error"], row["length"]) == (200, None, len(GARBAGE))
    assert "\x00" not in row["text"]


def test_link_like_text_in_comments_scripts_and_binaries_is_never_followed(hostile: Run) -> None:
    main = hostile.servers["main"]
    assert [path for path in NEVER if main.hits(path)] == []


# --- 9. traps ---------------------------------------------------------------------------------------


def test_an_endless_calendar_stops_at_max_depth(hostile: Run) -> None:
    months = [hit.path for hit in hostile.servers["main"].log if hit.path.startswith("/cal/")]
    assert sorted(months) == ["/cal/2024/01", "/cal/2024/02", "/cal/2024/03"]  # depths 1-3
    assert hostile.rows("SELECT max(depth) FROM pages") == [(3,)]


def test_repeating_paths_and_overlong_urls_are_skipped(hostile: Run) -> None:
    main = hostile.servers["main"]
    assert len(main.hits("/rep/a/b/a/b/")) == 1 and main.hits("/rep/a/b/a/b/a/b/") == []
    assert main.hits(LONG) == [] and main.url(LONG) not in hostile.urls()
    assert main.url("/rep/a/b/a/b/a/b/") not in hostile.urls()


# --- 10. private addresses --------------------------------------------------------------------------


def test_links_to_other_hosts_on_private_addresses_are_blocked(hostile: Run) -> None:
    other, second = hostile.servers["other"], hostile.servers["second"]
    for url in private_urls(other, second):
        row = hostile.page(url)
        assert row["status"] is None and row["error"].startswith("blocked: private address "), row
    assert other.log == [] and second.log == []  # not even robots.txt


@pytest.mark.parametrize(("path", "target"), [("/to-localhost", "http://localhost:{}/via-redirect"),
                                              ("/to-decimal", "http://2130706433:{}/via-decimal")])
def test_redirects_to_private_addresses_are_not_followed(hostile: Run, path: str, target: str) -> None:
    target = target.format(hostile.servers["other"].port)
    row = hostile.page(hostile.servers["main"].url(path))
    assert (row["status"], row["final_url"]) == (302, target)
    assert hostile.page(target)["error"].startswith("blocked: private address ")


def test_the_seed_host_itself_is_always_allowed(hostile: Run) -> None:
    assert hostile.page(hostile.servers["main"].url("/"))["status"] == 200  # 127.0.0.1 is private too


def test_no_adversarial_route_was_left_without_a_row(hostile: Run) -> None:
    main = hostile.servers["main"]
    assert {main.url(p) for p in ADVERSARIAL} <= hostile.urls()
