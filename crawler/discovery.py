"""Discovery: what an outcome adds to the frontier: its links and a redirect target it did not follow.

Pure: values in, values out. Links marked nofollow are not followed (unless --ignore-robots). A URL is
admitted once per crawl (a cache of what was seen spares the
frontier most repeats; the frontier dedups exactly), if in scope, not a trap, within --max-depth and
within its host's --max-pages-per-host. A URL seen before at a greater depth is reported as shallower,
so --max-depth counts the shortest path even when concurrency finds a longer one first. A redirect
chain is bounded however many hosts it crosses: a queued target carries its chain's hop count (in this
process: a resume, or another worker claiming the target, starts that count again).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from crawler.frontier import Entry
from crawler.records import Outcome
from crawler.settings import Limits
from crawler.urls import Scope, host_of, trap_reason

SEEN_MAX = 100_000  # discovered URLs remembered to skip repeats before any check (then forgotten at once)
MAX_REDIRECTS = Limits().max_redirects
REFUSED = -1  # in `seen`: a URL out of scope, a trap, or over its host's budget


@dataclass
class Found:
    """What outcomes discovered: new entries to queue, and known URLs reached by a shorter path."""

    new: list[Entry] = field(default_factory=list)
    shallower: list[tuple[str, int]] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.new or self.shallower)


class HostBudget:
    """--max-pages-per-host: admits at most `limit` distinct URLs per host into the frontier (0: no limit).

    Every admitted URL becomes exactly one page row, so a host ends with at most `limit` rows. The crawl
    loop asks `admit` before queueing a discovered URL and calls `note` for each claimed job (seeds and
    resumed jobs count too). Memory is bounded: a host under budget keeps at most `limit` URLs (to tell
    a repeat from a new URL), a spent host only a marker. A resumed crawl first notes every URL its
    frontier holds, so the budget spans all its runs.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._urls: dict[str, set[str] | None] = {}  # host -> admitted URLs; None once spent

    def admit(self, url: str, host: str) -> bool:
        """True if `url` may be queued: new to this budget and its host under the limit."""
        return self.limit <= 0 or self._add(url, host)

    def note(self, url: str, host: str) -> None:
        """A job was claimed: its URL counts, whether or not this budget admitted it."""
        if self.limit > 0:
            self._add(url, host)

    def spent(self, host: str) -> bool:
        return self.limit > 0 and host in self._urls and self._urls[host] is None

    def _add(self, url: str, host: str) -> bool:
        urls = self._urls.setdefault(host, set())
        if urls is None or url in urls:
            return False
        urls.add(url)
        if len(urls) >= self.limit:
            self._urls[host] = None
        return True


class Discovery:
    """Admits discovered URLs (see the module docstring); `take()` hands over what was found so far."""

    def __init__(self, scope: Scope, max_depth: int | None, max_url_length: int, budget: HostBudget,
                 obey_nofollow: bool = True, max_redirects: int = MAX_REDIRECTS) -> None:
        self.scope, self.max_depth, self.max_url_length, self.budget = scope, max_depth, max_url_length, budget
        self.obey_nofollow = obey_nofollow  # (--ignore-robots follows nofollow links too)
        self.max_redirects = max_redirects
        self.seen: dict[str, int] = {}  # url -> least depth, or REFUSED
        self.chains: dict[str, int] = {}  # a queued redirect target -> the hops its chain took to reach it
        self.found = Found()

    def outcome(self, outcome: Outcome) -> None:
        """Links (and a redirect target not followed in place) worth queueing. A redirect that ended in an
        error (a loop, too many hops) adds nothing: its chain must not be re-entered as a new job. A
        redirect target is queued with the hops its chain took so far, across hosts: past max_redirects the
        outcome becomes "too many redirects" instead (its error set here, before anything counts it)."""
        depth = outcome.job.depth + 1
        response = outcome.response
        target = response.redirect_left
        if target:
            hops = self.chains.pop(outcome.job.url, 0) + len(outcome.followed) + 1
            if hops > self.max_redirects:
                response.error = f"too many redirects: more than {self.max_redirects}, across hosts"
            else:
                new = target not in self.seen
                self.urls([target], outcome.job.depth)
                if new and self.seen.get(target, REFUSED) != REFUSED:
                    self._remember_chain(target, hops)
        if outcome.page and (self.max_depth is None or depth <= self.max_depth):
            self.urls([link.url for link in outcome.page.links if not (link.nofollow and self.obey_nofollow)],
                      depth)

    def _remember_chain(self, url: str, hops: int) -> None:
        if len(self.chains) >= SEEN_MAX:
            self.chains.clear()  # (a chain forgotten starts its count again: bounded, if less tightly)
        self.chains[url] = hops

    def urls(self, urls: list[str], depth: int) -> None:
        for url in urls:
            known = self.seen.get(url)
            if known is None:
                self._admit(url, depth)
            elif depth < known:
                self.seen[url] = depth
                self.found.shallower.append((url, depth))

    def _admit(self, url: str, depth: int) -> None:
        if len(self.seen) >= SEEN_MAX:
            self.seen.clear()
        self.seen[url] = REFUSED
        if self.scope.allows(url) and trap_reason(url, self.max_url_length) is None:
            host = host_of(url)
            if self.budget.admit(url, host):
                self.seen[url] = depth
                self.found.new.append((url, host, depth))

    def again(self, outcomes: list[Outcome]) -> list[Entry]:
        """What the outcomes discovered, by the same rules but whether seen before or not (and outside
        the host budget, which admitted them once already): for a frontier that may have lost them."""
        fresh = Discovery(self.scope, self.max_depth, self.max_url_length, HostBudget(0), self.obey_nofollow,
                          self.max_redirects)
        for outcome in outcomes:
            fresh.outcome(outcome)
        return fresh.take().new

    def take(self) -> Found:
        found, self.found = self.found, Found()
        return found
