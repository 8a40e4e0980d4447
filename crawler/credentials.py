"""Credentials: the HTTP basic-auth user and password per origin, taken from URLs, kept in memory only.

A URL's userinfo (`http://user:password@host/`) never reaches a stored URL: crawler.urls.normalize drops
it, so a page is one page with or without it. The seeds' userinfo (and `--auth` URLs') is kept here
instead, by origin (scheme, host, port: RFC 6454), and sent (RFC 7617 basic auth) only to that origin.
Nothing here is written anywhere: a resumed crawl is given the credentials again with `--auth`.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import unquote, urlsplit

from crawler.urls import InvalidURL, normalize, origin_of


class Credentials:
    """(user, password) by origin; the first URL that names an origin's credentials wins."""

    def __init__(self) -> None:
        self._by_origin: dict[str, tuple[str, str]] = {}

    @classmethod
    def from_urls(cls, urls: Iterable[str]) -> Credentials:
        """The credentials of URLs that must each carry some (`--auth`); InvalidURL, one line, if not."""
        credentials = cls()
        for url in urls:
            try:
                named = credentials.note(url)
            except InvalidURL as exc:
                raise InvalidURL(f"--auth {exc}") from None
            if not named:
                raise InvalidURL(f"--auth {url!r}: no user name or password (http://USER:PASSWORD@HOST/)")
        return credentials

    def note(self, url: str) -> bool:
        """Keep the userinfo of `url` (percent-decoded) for its origin; whether it had any. A URL that
        does not normalize raises InvalidURL."""
        origin = origin_of(normalize(url))
        found = userinfo(url)
        if found is not None:
            self._by_origin.setdefault(origin, found)
        return found is not None

    def for_url(self, url: str) -> tuple[str, str] | None:
        """The (user, password) for a normalized URL's origin, or None."""
        return self._by_origin.get(origin_of(url))

    def __bool__(self) -> bool:
        return bool(self._by_origin)


def userinfo(url: str) -> tuple[str, str] | None:
    """(user, password) of a URL's userinfo, percent-decoded ("" for a missing password); None without
    one or with an empty one (`http://@host/`)."""
    authority = urlsplit(url.strip()).netloc
    info, at, _ = authority.rpartition("@")
    if not at or not info:
        return None
    user, _, password = info.partition(":")
    return unquote(user), unquote(password)
