"""crawler.robots: RFC 9309 matching (through protego), user-agent groups and the fetch-status policy."""

from __future__ import annotations

import pytest

from crawler.robots import ALLOW_ALL, DISALLOW_ALL, MAX_BYTES, parse, product_token, rules_for

UA = "crawler/0.1 (+https://github.com/crawler)"

ROBOTS = """\
# a comment
User-agent: *
Disallow: /private/
Allow: /private/public/
Disallow: /*.pdf$
Disallow: /search
Allow: /search/about$
Disallow: /tmp*/cache
Disallow: /%7Ejoe/
"""


@pytest.mark.parametrize(
    ("path", "allowed"),
    [
        ("/", True),
        ("/index.html", True),
        ("/private/", False),
        ("/private/x.html", False),
        ("/private", True),  # prefix match: "/private/" does not cover "/private"
        ("/private/public/x", True),  # longest match wins: Allow is longer
        ("/doc.pdf", False),  # "*" and "$"
        ("/a/b/doc.pdf", False),
        ("/doc.pdf?download=1", True),  # "$" anchors the end of path + query
        ("/doc.pdfx", True),
        ("/search", False),
        ("/search?q=x", False),
        ("/searching", False),  # plain prefix
        ("/search/about", True),
        ("/search/about/more", False),
        ("/tmp1/cache/x", False),
        ("/tmp/cache", False),
        ("/tmpcache", True),
        ("/%7Ejoe/x", False),  # percent-escapes compare case-insensitively
        ("/%7ejoe/x", False),
        ("/~joe/x", False),  # RFC 9309 2.2.2: %7E and ~ are the same
        ("/robots.txt", True),
    ],
)
def test_allow_disallow(path: str, allowed: bool) -> None:
    assert parse(ROBOTS).allowed("https://example.com" + path, UA) is allowed


def test_allow_wins_a_tie() -> None:
    rules = parse("User-agent: *\nDisallow: /page\nAllow: /page\n")
    assert rules.allowed("http://e/page", UA)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "User-agent: *\nDisallow:\n",  # empty Disallow allows everything
        "Disallow: /\n",  # a rule outside any group is ignored
        "<html><body>Not found</body></html>",
        "\x00\xff garbage \ufffd\n:::\nUser-agent\n",
    ],
)
def test_nothing_disallowed(text: str) -> None:
    assert parse(text).allowed("http://e/anything", UA)


GROUPS = """\
User-agent: otherbot
Disallow: /

User-agent: Crawler
Disallow: /no-crawler/
Crawl-delay: 2.5

User-agent: *
Disallow: /no-star/
Crawl-delay: 9
"""


@pytest.mark.parametrize(
    ("user_agent", "path", "allowed"),
    [
        (UA, "/no-crawler/x", False),  # full UA string, group "Crawler" (case-insensitive)
        (UA, "/no-star/x", True),  # only the most specific group applies
        (UA, "/other", True),
        ("crawler", "/no-crawler/x", False),
        ("somebot/2.0", "/no-star/x", False),  # falls back to "*"
        ("somebot/2.0", "/no-crawler/x", True),
        ("otherbot/1.0", "/anything", False),
        ("", "/no-star/x", False),  # no user agent: the "*" group
    ],
)
def test_user_agent_groups(user_agent: str, path: str, allowed: bool) -> None:
    assert parse(GROUPS).allowed("http://e" + path, user_agent) is allowed


def test_only_the_product_token_is_matched() -> None:
    # Protego alone would find "github" inside "(+https://github.com/crawler)" and apply this group.
    rules = parse("User-agent: github\nDisallow: /\n\nUser-agent: https\nDisallow: /\n")
    assert rules.allowed("http://e/x", UA)


@pytest.mark.parametrize(
    ("user_agent", "token"),
    [
        (UA, "crawler"),
        ("crawler", "crawler"),
        ("  Crawler/1.0", "Crawler"),
        ("my bot/1.0", "my"),
        ("", "*"),
        ("/1.0", "*"),
    ],
)
def test_product_token(user_agent: str, token: str) -> None:
    assert product_token(user_agent) == token


@pytest.mark.parametrize(
    ("user_agent", "delay"),
    [(UA, 2.5), ("somebot", 9.0), ("otherbot", None)],
)
def test_crawl_delay(user_agent: str, delay: float | None) -> None:
    assert parse(GROUPS).crawl_delay(user_agent) == delay


@pytest.mark.parametrize("value", ["abc", "-1", "nan", "inf", ""])
def test_malformed_crawl_delay_is_ignored(value: str) -> None:
    assert parse(f"User-agent: *\nCrawl-delay: {value}\n").crawl_delay(UA) is None


def test_byte_order_mark_is_ignored() -> None:
    text = "\ufeffUser-agent: *\nDisallow: /x\n"
    assert not parse(text).allowed("http://e/x", UA)
    assert not rules_for(200, text.encode("utf-8")).allowed("http://e/x", UA)


def test_constants() -> None:
    for url in ("http://e/", "http://e/x?y", "http://e/robots.txt"):
        assert ALLOW_ALL.allowed(url, UA)
        assert not DISALLOW_ALL.allowed(url, UA)
    assert ALLOW_ALL.crawl_delay(UA) is None
    assert DISALLOW_ALL.crawl_delay(UA) is None


@pytest.mark.parametrize(
    ("status", "allowed"),
    [
        (200, False),  # parsed: the body disallows /x
        (204, False),
        (301, True),  # a redirect the fetcher could not follow: unavailable
        (399, True),
        (400, True),
        (401, True),
        (403, True),
        (404, True),
        (410, True),
        (429, False),  # too many requests: treated as unreachable
        (499, True),
        (500, False),
        (503, False),
        (599, False),
        (None, False),  # no response at all
        (100, False),
    ],
)
def test_status_policy(status: int | None, allowed: bool) -> None:
    body = b"User-agent: *\nDisallow: /x\n"
    assert rules_for(status, body).allowed("http://e/x", UA) is allowed


def test_2xx_body_is_utf8_with_replacement() -> None:
    body = "User-agent: *\nDisallow: /caf\u00e9\n".encode() + b"\xff\xfe\nDisallow: /y\n"
    rules = rules_for(200, body)
    assert not rules.allowed("http://e/caf%C3%A9", UA)
    assert not rules.allowed("http://e/y", UA)


def test_only_the_first_500_kib_are_read() -> None:
    head = b"User-agent: *\nDisallow: /early\n"
    padding = b"# " + b"x" * (MAX_BYTES - len(head) - 3) + b"\n"
    body = head + padding + b"Disallow: /late\n"
    assert len(head + padding) == MAX_BYTES
    rules = rules_for(200, body)
    assert not rules.allowed("http://e/early", UA)
    assert rules.allowed("http://e/late", UA)
