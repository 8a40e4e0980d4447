"""Records: the plain values that travel between frontier, fetchers, extraction processes and the store."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

UNREACHABLE = frozenset({"timeout", "connection error", "dns", "ssl"})  # kinds: no answer from the host
_KIND_END = re.compile(r":| \(")


def error_kind(error: str) -> str:
    """An error's kind, its text up to the first ':' or ' (': "timeout", "connection error", "blocked"."""
    return _KIND_END.split(error, maxsplit=1)[0].strip()


@dataclass(frozen=True, slots=True)
class Job:
    """One URL claimed from the frontier, to be fetched."""

    id: int  # frontier row id (Redis: the lease's counter)
    url: str  # normalized
    depth: int
    lease: str = ""  # the claim's lease token, where the frontier fences claims (Redis); "" otherwise


@dataclass(slots=True)
class Response:
    """What one fetch produced (after retries and redirect hops). Never raises: failures are in `error`."""

    url: str  # the URL asked for
    final_url: str  # where the redirect hops ended (== url when none)
    status: int | None = None  # HTTP status of the last hop; None when no response arrived
    headers: dict[str, str] = field(default_factory=dict)  # lower-cased names
    body: bytes = b""  # decompressed, at most max_bytes; empty on error
    error: str | None = None  # None on success; else a short kind, e.g. "timeout", "too large: ..."
    elapsed_ms: int = 0
    fetched_at: float = 0.0  # unix time when the fetch started
    length: int | None = None  # body bytes received; kept after the body itself is dropped
    content_hash: str | None = None  # sha1 hex of the body (any type: duplicates of PDFs count too)

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "").split(";")[0].strip().lower()

    @property
    def followed_to(self) -> str | None:
        """Where redirects followed in place led, when they ended in an answer that is not a redirect:
        this fetch's row stands for that URL too."""
        return self.final_url if self._moved() and not self._is_redirect() else None

    @property
    def redirect_left(self) -> str | None:
        """The target of a redirect this fetch did not follow in place: it is crawled as its own URL."""
        return self.final_url if self._moved() and self._is_redirect() else None

    def _moved(self) -> bool:
        return self.error is None and bool(self.final_url) and self.final_url != self.url

    def _is_redirect(self) -> bool:
        return 300 <= (self.status or 0) < 400


@dataclass(slots=True)
class Link:
    url: str  # absolute, normalized, http(s), no fragment
    anchor: str  # visible anchor text, whitespace-collapsed
    lastmod: str | None = None  # a sitemap's <lastmod> for this URL
    nofollow: bool = False  # rel="nofollow", or on a page whose robots meta says nofollow: not followed

    def __reduce__(self) -> tuple[type[Link], tuple[str, str, str | None, bool]]:
        """Pickled as its four fields: a page's ~40 links cross from the extraction process in half the
        time a slots dataclass's generic pickling takes."""
        return Link, (self.url, self.anchor, self.lastmod, self.nofollow)


@dataclass(slots=True)
class Page:
    """What extraction found in one HTML body."""

    title: str | None = None
    description: str | None = None
    text: str = ""
    links: list[Link] = field(default_factory=list)
    encoding: str | None = None  # the charset the body was decoded with
    kind: str = "html"  # html | sitemap | sitemap index
    error: str | None = None  # what could not be read (a malformed sitemap), though the rest was
    canonical: str | None = None  # <link rel="canonical" href>, resolved
    noindex: bool = False  # <meta name="robots" content="noindex"> (or "none", or a crawler-named meta)


@dataclass(slots=True)
class FetchEnded:
    """A job's request has ended (its extraction may still be running): its host's slot can be freed now,
    ahead of the job's Outcome."""

    job: Job
    status: int | None
    elapsed_ms: int


@dataclass(slots=True)
class Outcome:
    """A fetched (or refused) job with its extracted page, ready for the store."""

    job: Job
    response: Response
    page: Page | None = None  # None for non-HTML and failed fetches
    followed: tuple[str, ...] = ()  # redirect hops this job's fetch followed in place
