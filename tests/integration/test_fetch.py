"""fetch_one and AddressGuard against the adversarial servers of tests/servers.py.

Each test checks the outcome AND an upper bound on the time it took (time.monotonic). The gevent cases
run in a subprocess that monkey-patches first: patching inside pytest would poison the other tests.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil
import pytest
from rebinding import answers
from servers import OK_HTML, AdversarialServer, serve

from crawler.fetch import ENGINES, load_engine
from crawler.fetch.client import Client, make_session
from crawler.fetch.guard import AddressGuard
from crawler.fetch.http import fetch_one
from crawler.records import Response
from crawler.settings import Limits

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 1.0
SLACK = 0.6  # scheduling slack on top of a deadline
FAST = Limits(timeout=TIMEOUT, retries=0, backoff=0.05)
MiB = 1024 * 1024


@pytest.fixture
def server() -> Iterator[AdversarialServer]:
    with serve() as running:
        yield running


@pytest.fixture
def session() -> Iterator:
    with make_session(8, Client("crawler-tests")) as made:
        yield made


def timed(fn: Callable[[], Response]) -> tuple[Response, float]:
    started = time.monotonic()
    return fn(), time.monotonic() - started


def fetch(
    session, server: AdversarialServer, path: str, limits: Limits = FAST, **kw
) -> tuple[Response, float]:
    return timed(lambda: fetch_one(session, server.url(path), limits, **kw))


def test_ok_has_status_lowercased_headers_and_body(session, server) -> None:
    before = time.time()
    resp, took = fetch(session, server, "/ok")
    assert (resp.status, resp.error, resp.final_url) == (200, None, server.url("/ok"))
    assert b"<title>ok</title>" in resp.body and resp.content_type == "text/html"
    assert resp.headers["x-dup"] == "last"  # last value wins
    assert before <= resp.fetched_at <= time.time() and 0 <= resp.elapsed_ms < 500
    assert took < 0.5


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "br"])
def test_bodies_are_decompressed(session, server, encoding: str) -> None:
    resp, took = fetch(session, server, f"/encoded/{encoding}")
    assert resp.error is None and b"<title>ok</title>" in resp.body and took < 0.5
    assert encoding in session.headers["Accept-Encoding"]


def test_session_settings() -> None:
    made = make_session(50, Client("ua/1"))
    adapter = made.get_adapter("http://x/")
    assert made.trust_env is False and made.headers["User-Agent"] == "ua/1"
    assert adapter._pool_maxsize == 50 and adapter.max_retries.total == 0
    assert made.get_adapter("https://x/") is adapter


def test_connections_are_reused_across_fetches_and_redirects(session, server) -> None:
    for _ in range(5):
        assert fetch(session, server, "/ok")[0].status == 200
    assert fetch(session, server, "/redirect/3", follow=lambda u: True)[0].status == 200
    assert fetch(session, server, "/404")[0].status == 404
    assert len({hit.port for hit in server.log}) == 1  # every body drained, the one connection pooled


def test_invalid_urls(session) -> None:
    for url in ("ftp://example.com/", "mailto:a@b.c", "http:///nohost"):
        resp = fetch_one(session, url, FAST)
        assert resp.status is None and resp.error.startswith("invalid url"), (url, resp.error)


def test_connection_refused_is_a_short_connection_error(session) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    resp, took = timed(lambda: fetch_one(session, f"http://127.0.0.1:{port}/", FAST))
    assert resp.status is None and resp.error == "connection error: Connection refused" and took < 0.5


@pytest.mark.parametrize("path", ["/hang", "/trickle-headers"])
def test_no_response_in_time_is_a_timeout(session, server, path: str) -> None:
    resp, took = fetch(session, server, path)
    assert (resp.status, resp.error, resp.body) == (None, "timeout", b"")
    assert TIMEOUT - 0.05 <= took < TIMEOUT + SLACK


@pytest.mark.parametrize("path", ["/stall", "/trickle"])
def test_body_not_done_in_time_is_a_timeout_keeping_the_status(session, server, path: str) -> None:
    resp, took = fetch(session, server, path)
    assert (resp.status, resp.error, resp.body) == (200, "timeout", b"")
    assert TIMEOUT - 0.05 <= took < TIMEOUT + SLACK


def test_timeouts_are_retried_with_a_deadline_per_attempt(session, server) -> None:
    limits = Limits(timeout=0.5, retries=1, backoff=0.05)
    resp, took = fetch(session, server, "/trickle-headers", limits)
    assert resp.error == "timeout" and len(server.hits("/trickle-headers")) == 2
    assert 1.0 <= took < 2 * 0.5 + 0.1 + SLACK


def test_many_trickles_at_once_all_end_at_their_deadline(server) -> None:
    paths = ["/trickle-headers", "/trickle", "/hang", "/stall"] * 3 + ["/ok"] * 4
    session = make_session(len(paths), Client("crawler-tests"))  # one session, as the gevent engine shares one
    with session, ThreadPoolExecutor(len(paths)) as pool:
        results = list(pool.map(lambda p: fetch(session, server, p), paths))
    for path, (resp, took) in zip(paths, results, strict=True):
        assert resp.error == (None if path == "/ok" else "timeout"), path
        assert took < TIMEOUT + SLACK, path


def test_the_watchdog_never_kills_a_reused_connection(session, server) -> None:
    """Attempts end long before their deadline; the reaper fires on them while the same pooled
    connection serves later attempts, and must leave it alone."""
    limits = Limits(timeout=0.3, retries=0)
    started = time.monotonic()
    while time.monotonic() - started < 1.0:
        resp, _ = fetch(session, server, "/sleep/20", limits)
        assert (resp.status, resp.error) == (200, None)
    assert len({hit.port for hit in server.log}) == 1


def test_reset_mid_headers_is_a_connection_error(session, server) -> None:
    resp, took = fetch(session, server, "/reset")
    assert resp.status is None and resp.error.startswith("connection error: ") and took < 0.5
    assert "\n" not in resp.error and len(resp.error) < 200


def test_declared_length_over_the_cap_fails_fast(session, server) -> None:
    resp, took = fetch(session, server, "/huge", Limits(timeout=TIMEOUT, retries=0, max_bytes=MiB))
    assert (resp.status, resp.body) == (200, b"") and resp.error == f"too large: more than {MiB} bytes"
    assert took < 0.3


def test_chunked_body_over_the_cap_stops_at_the_cap(session, server) -> None:
    resp, took = fetch(session, server, "/huge-chunked", Limits(timeout=TIMEOUT, retries=0, max_bytes=MiB))
    assert (resp.status, resp.body) == (200, b"") and resp.error == f"too large: more than {MiB} bytes"
    assert took < 0.5
    assert fetch(session, server, "/ok")[0].status == 200  # the cut connection was not pooled


@pytest.mark.parametrize("path", ["/huge", "/huge-chunked"])  # declared length / counted while reading
def test_truncate_keeps_the_first_max_bytes(session, server, path: str) -> None:
    """robots.txt's way (RFC 9309 2.5: parse the first 500 KiB): a body past the cap is cut, not failed."""
    limits = Limits(timeout=TIMEOUT, retries=0, max_bytes=MiB, truncate=True)
    resp, took = fetch(session, server, path, limits)
    assert (resp.status, len(resp.body), resp.error) == (200, MiB, None)
    assert took < 0.5


@pytest.mark.parametrize("path", ["/ok", "/encoded/gzip"])  # declared length / counted while inflating
def test_the_cap_is_on_decoded_bytes_and_inclusive(session, server, path: str) -> None:
    size = len(OK_HTML)
    assert fetch(session, server, path, Limits(retries=0, max_bytes=size))[0].body == OK_HTML
    resp, _ = fetch(session, server, path, Limits(retries=0, max_bytes=size - 1))
    assert (resp.status, resp.body, resp.error) == (200, b"", f"too large: more than {size - 1} bytes")


def peak_rss_growth(fn: Callable[[], object]) -> tuple[object, int]:
    """Run fn while a thread samples this process's RSS every 2 ms; (result, peak growth in bytes)."""
    proc, peak, done = psutil.Process(), [0], threading.Event()
    base = proc.memory_info().rss

    def sample() -> None:
        while not done.wait(0.002):
            peak[0] = max(peak[0], proc.memory_info().rss - base)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        return fn(), peak[0]
    finally:
        done.set()
        sampler.join()


def test_gzip_bomb_is_inflated_incrementally_and_capped(session, server) -> None:
    limits = Limits(timeout=5.0, retries=0, max_bytes=10 * MiB)
    server_bomb = server.url("/gzip-bomb")
    fetch_one(session, server.url("/ok"), limits)  # warm up: imports, connection
    from servers import gzip_bomb

    gzip_bomb()  # built once, outside the measurement
    (resp, took), growth = peak_rss_growth(lambda: timed(lambda: fetch_one(session, server_bomb, limits)))
    assert resp.status == 200 and resp.body == b"" and resp.error == f"too large: more than {10 * MiB} bytes"
    assert growth < 100 * MiB, f"RSS grew {growth / MiB:.0f} MiB"
    assert took < 1.5
    print(f"bomb: {took:.2f}s, RSS growth {growth / MiB:.1f} MiB")


def test_flaky_succeeds_on_the_third_request(session, server) -> None:
    resp, took = fetch(session, server, "/flaky", Limits(timeout=TIMEOUT, retries=2, backoff=0.05))
    assert (resp.status, resp.error) == (200, None) and len(server.hits("/flaky")) == 3
    assert took < 0.05 * (1 + 2) * 2 + 0.5


def test_last_5xx_is_returned_as_a_response(session, server) -> None:
    pauses: list[float] = []
    limits = Limits(timeout=TIMEOUT, retries=3, backoff=0.5)
    resp, took = fetch(session, server, "/always-500", limits, sleep=pauses.append)
    assert (resp.status, resp.error) == (500, None) and len(server.hits("/always-500")) == 4
    assert len(pauses) == 3 and took < 0.5
    for attempt, pause in enumerate(pauses):  # exponential backoff plus up to 100% jitter
        assert 0.5 * 2**attempt <= pause <= 2 * 0.5 * 2**attempt


def test_404_is_fetched_once(session, server) -> None:
    resp, took = fetch(session, server, "/404", Limits(timeout=TIMEOUT, retries=3))
    assert (resp.status, resp.error) == (404, None) and len(server.hits("/404")) == 1 and took < 0.5


def test_429_retry_after_is_honoured(session, server) -> None:
    resp, took = fetch(session, server, "/429", Limits(timeout=TIMEOUT, retries=2, backoff=0.01))
    first, second = server.hits("/429")
    assert (resp.status, resp.error) == (200, None)
    assert second.at - first.at >= 1.0 and took < 1.0 + 0.5


def test_retry_after_is_capped(session, server) -> None:
    limits = Limits(timeout=TIMEOUT, retries=1, max_retry_after=0.2)
    resp, took = fetch(session, server, "/429", limits)
    assert resp.status == 200 and took < 0.2 + 0.4


def test_retry_after_http_date(session, server) -> None:
    pauses: list[float] = []
    limits = Limits(timeout=TIMEOUT, retries=1, backoff=0.01)
    resp, took = fetch(session, server, "/503-date?seconds=30", limits, sleep=pauses.append)
    assert resp.status == 503 and len(pauses) == 1 and 28 <= pauses[0] <= 30 and took < 0.5


def test_connection_errors_are_retried(session, server) -> None:
    resp, took = fetch(session, server, "/reset", Limits(timeout=TIMEOUT, retries=2, backoff=0.01))
    assert resp.error.startswith("connection error") and len(server.hits("/reset")) == 3 and took < 0.5


def test_redirect_chain_is_followed_hop_by_hop(session, server) -> None:
    asked: list[str] = []
    resp, took = fetch(session, server, "/redirect/3", follow=lambda u: asked.append(u) or True)
    assert (resp.status, resp.error, resp.final_url) == (200, None, server.url("/ok"))
    assert resp.url == server.url("/redirect/3") and b"ok" in resp.body
    assert asked == [server.url(p) for p in ("/redirect/2", "/redirect/1", "/ok")] and took < 0.5


def test_redirect_not_followed_returns_the_3xx_with_its_target(session, server) -> None:
    resp, _ = fetch(session, server, "/redirect/2")
    assert (resp.status, resp.error, resp.final_url) == (302, None, server.url("/redirect/1"))
    assert len(server.hits("/redirect/1")) == 0


def test_cross_host_redirect_target_is_normalized_and_left_to_the_caller(session, server) -> None:
    resp, _ = fetch(session, server, "/redirect-to?url=HTTP://Example.COM:80/a/../b", follow=lambda u: False)
    assert (resp.status, resp.final_url) == (302, "http://example.com/b")


def test_redirect_loop(session, server) -> None:
    resp, took = fetch(session, server, "/loop-a", follow=lambda u: True)
    assert resp.status == 301 and resp.error == f"redirect loop: {server.url('/loop-a')}"
    assert resp.final_url == server.url("/loop-b") and took < 0.5


def test_too_many_redirects(session, server) -> None:
    limits = Limits(timeout=TIMEOUT, retries=0, max_redirects=2)
    resp, _ = fetch(session, server, "/redirect/5", limits, follow=lambda u: True)
    assert resp.status == 302 and resp.error == "too many redirects: more than 2"
    assert len(server.log) == 3 and resp.final_url == server.url("/redirect/3")
    resp, _ = fetch(session, server, "/redirect/2", limits, follow=lambda u: True)
    assert (resp.status, resp.error) == (200, None)  # exactly max_redirects hops is fine


def test_redirect_to_an_invalid_url(session, server) -> None:
    resp, _ = fetch(session, server, "/redirect-to?url=ftp://example.com/", follow=lambda u: True)
    assert resp.status == 302 and resp.error.startswith("invalid url: ")


@pytest.mark.parametrize(
    ("url", "address"),
    [
        ("http://2130706433/", "127.0.0.1"),  # decimal: getaddrinfo reads it as an IPv4 address
        ("http://0x7f.1/", "127.0.0.1"),
        ("http://127.0.0.1/", "127.0.0.1"),
        ("http://[::1]/", "::1"),
        ("http://localhost:8080/", ""),  # 127.0.0.1 or ::1, whichever the resolver lists first
    ],
)
def test_guard_blocks_private_addresses(url: str, address: str) -> None:
    blocked = AddressGuard({("example.com", 80)}, allow_private=False).check(url)
    assert blocked is not None and blocked.startswith(f"blocked: private address {address}")


def test_guard_trusted_hosts_and_allow_private_pass_without_resolving(monkeypatch) -> None:
    monkeypatch.setattr(socket, "getaddrinfo", lambda *a, **k: pytest.fail("resolved"))
    assert AddressGuard({("LOCALHOST", 9), ("127.0.0.1", 80)}, False).check("http://localhost:9/x") is None
    assert AddressGuard({("127.0.0.1", 9)}, False).check("http://127.0.0.1:9/x") is None
    assert AddressGuard({("[::1]", 443)}, False).check("https://[::1]/") is None
    assert AddressGuard((), True).check("http://10.0.0.1/") is None


def test_guard_trusts_a_seed_host_on_its_own_port_only() -> None:
    """A page on localhost:8000 may not send the crawler to Redis on localhost:6379."""
    guard = AddressGuard({("127.0.0.1", 8000), ("127.0.0.1", 80)}, False)
    assert guard.check("http://127.0.0.1:8000/") is None and guard.check("http://127.0.0.1/") is None
    assert guard.check("http://127.0.0.1:6379/") == "blocked: private address 127.0.0.1"
    assert guard.check("https://127.0.0.1/") == "blocked: private address 127.0.0.1"  # 443
    assert guard.check_peer("127.0.0.1", 8000, "127.0.0.1") is None
    assert guard.check_peer("127.0.0.1", 6379, "127.0.0.1") == "blocked: private address 127.0.0.1 (connected)"


@pytest.mark.parametrize(
    ("url", "blocked"),
    [
        ("http://[fe80::1%25eth0]/", "blocked: address literal not understood: [fe80::1%25eth0] (an IPv6 zone)"),
        ("http://[::1%25lo]:8080/", "blocked: address literal not understood: [::1%25lo] (an IPv6 zone)"),
        ("http://1.2.3.4.5/", "blocked: address literal not understood: 1.2.3.4.5 (more than 4 parts)"),
        ("http://999.0.0.1/", "blocked: address literal not understood: 999.0.0.1 (a part out of range)"),
        ("http://0x7f.1/", "blocked: private address 127.0.0.1"),
        ("http://[::ffff:10.0.0.1]/", "blocked: private address ::ffff:a00:1"),
        ("http://93.184.216.34/", None),
        ("http://[::1/", "blocked: no host to judge (Invalid IPv6 URL)"),
    ],
)
def test_guard_judges_literals_without_resolving(monkeypatch, url: str, blocked: str | None) -> None:
    """An address literal is judged as written; one it cannot classify is refused, not let through."""
    monkeypatch.setattr(socket, "getaddrinfo", lambda *a, **k: pytest.fail("resolved"))
    assert AddressGuard({("example.com", 80)}, allow_private=False).check(url) == blocked


def fake_resolver(table: dict[str, list[str]], calls: list[str]) -> Callable:
    def getaddrinfo(host: str, *args, **kwargs) -> list:
        calls.append(host)
        if host not in table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (ip, 0)) for ip in table[host]]

    return getaddrinfo


def test_guard_blocks_if_any_address_is_private_and_caches(monkeypatch) -> None:
    calls: list[str] = []
    table = {"public.test": ["93.184.216.34"], "mixed.test": ["93.184.216.34", "10.1.2.3"]}
    monkeypatch.setattr(socket, "getaddrinfo", fake_resolver(table, calls))
    guard = AddressGuard((), False)
    assert guard.check("http://public.test/a") is None and guard.check("http://public.test/b") is None
    assert guard.check("https://mixed.test/") == "blocked: private address 10.1.2.3"
    assert guard.check("https://mixed.test/again") == "blocked: private address 10.1.2.3"
    assert calls == ["public.test", "mixed.test"]
    assert guard.check("http://nowhere.test/") is None  # let the fetch fail normally


def test_the_rule_holds_for_the_address_connected_to(monkeypatch, session, server) -> None:
    """DNS rebinding: the guard's lookup of rebind.test gets a public address, the connection's 127.0.0.1.
    The connection is closed before a request is sent; a trusted host or --allow-private connect."""
    monkeypatch.setattr(socket, "getaddrinfo", answers({"rebind.test": ["93.184.216.34", "127.0.0.1"]}))
    url, guard = f"http://rebind.test:{server.port}/ok", AddressGuard({("127.0.0.1", server.port)}, False)
    assert guard.check(url) is None
    resp = fetch_one(session, url, FAST, guard=guard)
    assert (resp.status, resp.error) == (None, "blocked: private address 127.0.0.1 (connected)")
    hop = fetch_one(session, server.url(f"/redirect-to?url={url}"), FAST, follow=lambda u: True, guard=guard)
    assert (hop.status, hop.error, hop.final_url) == (None, "blocked: private address 127.0.0.1 (connected)", url)
    assert [hit.path for hit in server.log] == [f"/redirect-to?url={url}"]
    assert fetch_one(session, url, FAST, guard=AddressGuard({("rebind.test", server.port)}, False)).status == 200
    assert fetch_one(session, url, FAST, guard=AddressGuard((), True)).status == 200


def test_engines_are_loaded_lazily_by_name() -> None:
    assert set(ENGINES) == {"gevent", "threads"}
    assert load_engine("threads").__name__ == "ThreadEngine"
    with pytest.raises(ValueError, match="unknown engine"):
        load_engine("fork")


GEVENT_SCRIPT = textwrap.dedent(
    """
    from gevent import monkey
    monkey.patch_all(thread=False, queue=False)
    import json, sys, time
    import gevent
    import crawler.fetch.deadline as deadline
    import crawler.fetch.http as http
    from crawler.fetch.client import Client, make_session
    from crawler.settings import Limits

    base, paths = sys.argv[1], sys.argv[2:]
    session = make_session(20, Client("crawler-tests"))
    limits = Limits(timeout=1.0, retries=0, max_bytes=10 * 2**20)
    http.fetch_one(session, base + "/ok", limits)

    def status_kib(field):  # Linux: VmRSS now, VmHWM the peak since the clear_refs reset below
        return int(next(l for l in open("/proc/self/status") if l.startswith(field + ":")).split()[1])

    with open("/proc/self/clear_refs", "w") as refs:
        refs.write("5")
    rss_before = status_kib("VmRSS")
    gaps, last = [0.0], [time.monotonic()]

    def beat():
        while True:
            gevent.sleep(0.02)
            now = time.monotonic()
            gaps.append(now - last[0])
            last[0] = now

    def one(path):
        started = time.monotonic()
        resp = http.fetch_one(session, base + path, limits)
        return {"path": path, "status": resp.status, "error": resp.error, "took": time.monotonic() - started}

    heart = gevent.spawn(beat)
    started = time.monotonic()
    jobs = [gevent.spawn(one, path) for path in paths]
    gevent.joinall(jobs, timeout=20)
    heart.kill()
    print(json.dumps({
        "results": [job.value for job in jobs],
        "total": time.monotonic() - started,
        "max_gap": max(gaps),
        "rss_growth_kib": status_kib("VmHWM") - rss_before,
        "green": deadline.green(),
        "reaper_started": deadline.REAPER.thread is not None,
    }))
    """
)


def test_deadline_and_cap_hold_under_gevent(server) -> None:
    from servers import gzip_bomb

    gzip_bomb()  # build it before the clock starts
    paths = ["/hang", "/trickle", "/trickle-headers", "/stall", "/gzip-bomb", "/ok"] * 2
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-c", GEVENT_SCRIPT, server.base, *paths]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60, cwd=ROOT, env=env, check=False)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["green"] is True and report["reaper_started"] is False
    for result in report["results"]:
        expected = {"/ok": None, "/gzip-bomb": f"too large: more than {10 * MiB} bytes"}.get(
            result["path"], "timeout"
        )
        assert result["error"] == expected, result
        assert result["took"] < TIMEOUT + SLACK, result
    assert report["total"] < TIMEOUT + SLACK  # the greenlets ran concurrently
    assert report["max_gap"] < 0.5  # no greenlet blocked the hub
    assert report["rss_growth_kib"] < 100 * 1024
    print(f"gevent: {json.dumps(report)}")
