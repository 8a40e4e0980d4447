"""Robots: the robots.txt rules of one origin, following RFC 9309, parsed by protego. Never fetches.

The fetcher gets /robots.txt and hands the status and body to `rules_for`, which applies the RFC's
policy for failures; `Rules.allowed` then answers per URL. Matching (longest match wins, Allow wins a
tie, "*" and "$" wildcards) is protego's.
"""

from __future__ import annotations

from protego import Protego

MAX_BYTES = 500 * 1024  # RFC 9309 2.5: parsers must handle at least 500 KiB; we read no more


class Rules:
    """What one robots.txt allows. Either protego-backed or a constant verdict (allow/disallow all)."""

    __slots__ = ("_parser", "_verdict")

    def __init__(self, parser: Protego | None = None, verdict: bool = True) -> None:
        self._parser = parser
        self._verdict = verdict  # used only when there is no parser

    def allowed(self, url: str, user_agent: str) -> bool:
        """May `user_agent` (the full User-Agent header is fine) fetch `url`?"""
        if self._parser is None:
            return self._verdict
        return self._parser.can_fetch(url, product_token(user_agent))

    def crawl_delay(self, user_agent: str) -> float | None:
        """The Crawl-delay (seconds) of the group that applies to `user_agent`, if it sets one."""
        if self._parser is None:
            return None
        return self._parser.crawl_delay(product_token(user_agent))

    def sitemaps(self) -> list[str]:
        """The URLs of its `Sitemap:` lines."""
        return [] if self._parser is None else list(self._parser.sitemaps)

    def __repr__(self) -> str:
        if self._parser is None:
            return "ALLOW_ALL" if self._verdict else "DISALLOW_ALL"
        return "Rules(<parsed>)"


ALLOW_ALL = Rules(verdict=True)
DISALLOW_ALL = Rules(verdict=False)


def product_token(user_agent: str) -> str:
    """The product token robots.txt groups are matched against (RFC 9309 2.2.1).

    "crawler/0.1 (+https://example.org/bot)" -> "crawler". Protego looks for a group's name anywhere
    in the string it is given, so passing the full header would let a group for "example" or
    "https" apply to us. An empty user agent gives "*": only the catch-all group applies.
    """
    token = user_agent.strip().split("/", 1)[0].strip()
    token = token.split(None, 1)[0] if token else ""
    return token or "*"


def parse(text: str) -> Rules:
    """Rules from the text of a robots.txt. Garbage lines are ignored, so garbage allows all."""
    return Rules(Protego.parse(text.lstrip("\ufeff")))


def rules_for(status: int | None, body: bytes) -> Rules:
    """The rules implied by fetching /robots.txt (RFC 9309 2.3.1), redirects already followed.

    2xx: parse the first 500 KiB as UTF-8. 3xx (a redirect the fetcher could not follow, or too many)
    and 4xx: "unavailable", crawl anything. 429 too many requests: the RFC lists it with 4xx, but it
    means the server is overloaded, so, like Google, we treat it as unreachable. 5xx and no response at
    all (None: connection error, timeout): "unreachable", crawl nothing.
    """
    if status is not None and 200 <= status < 300:
        return parse(body[:MAX_BYTES].decode("utf-8-sig", errors="replace"))
    if status is not None and 300 <= status < 500 and status != 429:
        return ALLOW_ALL
    return DISALLOW_ALL
