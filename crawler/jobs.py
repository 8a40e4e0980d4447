"""The worker: what one greenlet or pool thread does with a job (guard, fetch, extract in the extraction
pool of crawler.extract.pool), and the redirect hops in flight that the crawl loop must know of.

Runs on the engine's workers, never on the crawl loop. Every function here returns a value and never
raises, so one broken page can't stall the loop: trouble ends up in the record's `error`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from multiprocessing.pool import Pool
from typing import Any

from crawler import testhook
from crawler.extract import sitemap
from crawler.extract.pool import TooSlow, dead_after, html_page, run_within
from crawler.extract.sitemap import root_of
from crawler.fetch.base import Workers
from crawler.fetch.guard import AddressGuard
from crawler.fetch.http import Tap, fetch_one
from crawler.fetch.processes import FetchProcesses
from crawler.frontier.robots import unshared
from crawler.records import FetchEnded, Job, Outcome, Page, Response
from crawler.robots import ALLOW_ALL, Rules, rules_for
from crawler.robots import MAX_BYTES as ROBOTS_MAX_BYTES
from crawler.scheduler import Scheduler
from crawler.settings import Limits, Settings
from crawler.urls import InvalidURL, Scope, host_of, normalize, trap_reason

HTML_TYPES = {"text/html", "application/xhtml+xml"}
Extract = Callable[[Response, Callable[[str, bytes, Any], Page], Any], "Page | None"]  # (response, fn, arg)
RobotsAnswers = Callable[[str, Callable[[], Response]], Response]  # (origin, fetch) -> robots.txt's answer


@dataclass
class RobotsResult:
    origin: str
    rules: Rules
    response: Response

    @property
    def refusal(self) -> str | None:
        """The error of the origin's pages when robots.txt could not be read: what failed, first (the host
        is down, its name does not resolve, its TLS fails: "connection error: ... (at robots.txt)"), or
        "blocked: robots.txt unavailable (HTTP 503)" when the server answered with an error."""
        response = self.response
        if response.error:
            return f"{response.error} (at robots.txt)"
        if response.status is not None and response.status >= 500:
            return f"blocked: robots.txt unavailable (HTTP {response.status})"
        return None


class HopsInFlight:
    """URLs that redirect chains in flight are fetching in place right now. A URL is taken by one chain
    at a time, and the crawl loop holds back a job for a URL that is taken (see Crawl._refill): the
    chain's page row will stand for it. Safe from any thread or greenlet."""

    def __init__(self) -> None:
        self._urls: set[str] = set()
        self._lock = threading.Lock()  # held only around set operations: safe under gevent too

    def take(self, url: str) -> bool:
        with self._lock:
            if url in self._urls:
                return False
            self._urls.add(url)
            return True

    def release(self, urls: Iterable[str]) -> None:
        with self._lock:
            self._urls.difference_update(urls)

    def __contains__(self, url: object) -> bool:
        return url in self._urls


class Sitemaps:
    """The URLs known to be sitemaps (--sitemap, robots.txt's Sitemap: lines, an index's entries) with
    their nesting level: an index deeper than MAX_NESTING is read, its sitemaps not followed. A URL not
    named but whose body opens <urlset> or <sitemapindex> is a sitemap too (so a resume knows nested ones)."""

    MAX_NESTING = 3

    def __init__(self, given: Iterable[str]) -> None:
        self.level = dict.fromkeys(given, 0)

    def named(self, urls: Iterable[str], level: int = 0) -> list[str]:
        """Note `urls` as sitemaps; the normalized ones, to queue."""
        found = []
        for url in urls:
            try:
                found.append(normalize(url))
            except InvalidURL:
                continue
            self.level.setdefault(found[-1], level)
        return found

    def nested(self, url: str, page: Page | None) -> None:
        """An index's entries are sitemaps one level down; past MAX_NESTING they are not followed."""
        if page is None or page.kind != "sitemap index":
            return
        level = self.level.get(url, 0) + 1
        if level > self.MAX_NESTING:
            page.links, page.error = [], f"sitemap error: indexes nested deeper than {self.MAX_NESTING}"
        else:
            self.named([link.url for link in page.links], level)


def is_sitemap(response: Response, named: bool) -> bool:
    """A sitemap: named as one (see Sitemaps), or an answer that is not HTML whose body opens one."""
    return response.status == 200 and (named or (not is_html(response) and root_of(response.body) is not None))


def page_of(response: Response, named_sitemap: bool, extract: Extract, max_bytes: int) -> Page | None:
    """What a fetched response holds (a sitemap's URLs, an HTML page), through `extract`; the body is dropped,
    its length and hash kept, and an extraction's error becomes the response's. Where the fetch ran: in
    the crawl process (the extraction pool extracts) or in a fetch process (it extracts in place)."""
    page = None
    if response.error is None and is_sitemap(response, named_sitemap):
        page = extract(response, sitemap.extract, max_bytes)
    elif response.error is None and is_html(response):
        page = extract(response, html_page, response.headers.get("content-type"))
    if response.error is None and response.status != 304:  # (a 304 has no body: its row's is carried)
        response.content_hash = hashlib.sha1(response.body).hexdigest()
    response.length, response.body = len(response.body), b""
    if page is not None and page.error:
        response.error = page.error
    return page


def robots_limits(limits: Limits) -> Limits:
    """robots.txt's: the pages' cap, at most 500 KiB (RFC 9309 2.5); a longer file is cut there, not failed."""
    return dataclasses.replace(limits, max_bytes=min(limits.max_bytes, ROBOTS_MAX_BYTES), truncate=True)


def extraction_failed(exc: Exception, limit: float) -> str:
    """The page's error when its extraction raised `exc`."""
    if isinstance(exc, TooSlow):  # interrupted in its process, which goes on with the next page
        return f"parse error: extraction took over {limit:g} s"
    if isinstance(exc, TimeoutError):  # its process died (the pool starts another) or hung in C code
        return f"parse error: extraction gave {exc}"
    return f"parse error: {exc!r}"[:500]


def is_html(response: Response) -> bool:
    kind = response.content_type
    return kind in HTML_TYPES or (not kind and response.body.lstrip()[:1] == b"<")


class JobRunner:
    """Runs jobs and robots.txt fetches on the engine's greenlets or threads (see the module docstring)."""

    def __init__(
        self,
        engine: Workers,
        settings: Settings,
        scope: Scope,
        scheduler: Scheduler,
        guard: AddressGuard,
        is_known: Callable[[str], bool],
        pool: Pool | None,
        tap: Tap | None = None,
        validators: Mapping[str, Mapping[str, str]] | None = None,
        robots_answers: RobotsAnswers = unshared,
        fetchers: FetchProcesses | None = None,
    ) -> None:
        self.engine, self.settings, self.scope, self.tap = engine, settings, scope, tap
        self.robots_answers = robots_answers  # who fetches robots.txt: this process, or the first worker
        self.validators = validators or {}  # url -> If-None-Match / If-Modified-Since, in a recrawl
        self.scheduler, self.guard, self.is_known, self.pool = scheduler, guard, is_known, pool
        self.fetchers = fetchers  # the extraction processes fetch too (crawler.fetch.processes), or None
        self.share_guard()
        self.following = HopsInFlight()
        self.sitemaps = Sitemaps(settings.sitemap)
        self.robots_limits = robots_limits(settings.limits)

    def share_guard(self) -> None:
        """The address guard's rule to the fetch processes (at the start, and when a seed's redirect widens it)."""
        if self.fetchers is not None:
            self.fetchers.guard(self.guard.trusted, self.guard.allow_private)

    def page(self, job: Job) -> Outcome:
        """The job's outcome, with the redirect hops it followed in place (the loop releases them)."""
        followed: list[str] = []
        try:
            return self._page(job, followed)
        except Exception as exc:  # noqa: BLE001 (a bug must cost one page, not the crawl)
            error = f"internal: {exc!r}"[:500]
            return Outcome(job, Response(job.url, job.url, error=error), None, tuple(followed))

    def _page(self, job: Job, followed: list[str]) -> Outcome:
        blocked = self.guard.check(job.url)
        if blocked:
            return Outcome(job, Response(job.url, job.url, error=blocked))
        follow = self._follower(job.url, followed)
        testhook.reached("mid-fetch")
        if self.fetchers is not None:
            response, page = self.fetchers.page(self.engine, job, self.validators.get(job.url), follow,
                                                job.url in self.sitemaps.level)
        else:
            response = fetch_one(self.engine.session(), job.url, self.settings.limits, follow=follow, tap=self.tap,
                                 headers=self.validators.get(job.url), guard=self.guard)
            self.engine.tell(FetchEnded(job, response.status, response.elapsed_ms))  # the host's slot is free
            page = page_of(response, job.url in self.sitemaps.level, self._extract, self.settings.limits.max_bytes)
        self.sitemaps.nested(job.url, page)
        return Outcome(job, response, page, tuple(followed))

    def _follower(self, url: str, followed: list[str]) -> Callable[[str], bool]:
        """Redirect hops followed in place: same host, in scope, not a trap, allowed by robots.txt and the
        private-address rule, not known to the frontier nor taken by another chain. Each one followed is
        added to `followed`. Any other target is left to the crawl loop to queue."""
        host = host_of(url)

        def follow(hop: str) -> bool:
            rules = self.scheduler.rules_for(hop)
            if not (
                host_of(hop) == host
                and self.scope.allows(hop)
                and trap_reason(hop, self.settings.limits.max_url_length) is None
                and rules is not None
                and rules.allowed(hop, self.settings.user_agent)
                and self.guard.check(hop) is None
                and not self.is_known(hop)
                and self.following.take(hop)
            ):
                return False
            followed.append(hop)
            return True

        return follow

    def _extract(self, response: Response, fn: Callable[[str, bytes, Any], Page], arg: Any) -> Page | None:
        """fn(url, body, arg) in the extraction pool (html_page, or sitemap.extract)."""
        args = (response.final_url, response.body, arg)
        limit = self.settings.limits.parse_timeout
        try:
            if self.pool is None:  # (--parse-workers 0: on a thread, not in this greenlet, see Workers.aside)
                return self.engine.aside(fn, args, limit)
            return self.engine.apply(self.pool, run_within, (limit, fn, *args), dead_after(limit))
        except Exception as exc:  # noqa: BLE001 (a bug in extraction costs one page)
            response.error = extraction_failed(exc, limit)
        return None

    def robots(self, origin: str) -> RobotsResult:
        """Fetch and parse `origin`'s robots.txt. Redirects may leave the origin (RFC 9309 2.3.1.2), but
        never for a private address; one refused leaves a 3xx, which allows all. An origin the guard
        blocks is not asked at all: its pages are refused one by one, with the guard's reason."""
        url = origin + "/robots.txt"
        if self.guard.check(url):
            return RobotsResult(origin, ALLOW_ALL, Response(url, url))
        try:
            response = self.robots_answers(origin, lambda: self._fetch_robots(url))
        except Exception as exc:  # noqa: BLE001 (a bug, or Redis gone, must not stop the crawl)
            response = Response(url, url, error=f"internal: {exc!r}"[:500])
        rules = rules_for(None if response.error else response.status, response.body)
        response.body = b""
        return RobotsResult(origin, rules, response)

    def _fetch_robots(self, url: str) -> Response:
        if self.fetchers is not None:
            return self.fetchers.robots(self.engine, url)
        return fetch_one(self.engine.session(), url, self.robots_limits, follow=self._robots_hop, tap=self.tap,
                         guard=self.guard)

    def _robots_hop(self, hop: str) -> bool:
        return self.guard.check(hop) is None
