"""Rebuild: a crawl's frontier as its stored pages say it is, for a shared frontier that lost its data.

Every terminal outcome is one pages row and an HTML page's links are stored, so the frontier can be
recomputed from the store: done = the stored URLs (and the URLs their redirects were followed to in
place); queued = the seeds and the --sitemap URLs (as a run queues them), then the stored pages' links
(less nofollow ones) and the redirects they left, admitted by the same rules as discovery (scope,
traps, --max-depth), each at its least depth; less what is done. Pure but for the one read of the crawl's rows.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import Connection, select

from crawler.discovery import Discovery, HostBudget
from crawler.frontier import Entry
from crawler.settings import Settings
from crawler.store.schema import links, pages
from crawler.urls import Scope, host_of


@dataclass
class Rebuilt:
    queued: list[Entry]
    done: list[str]


def frontier_of(conn: Connection, crawl_id: int, seeds: list[str], settings: Settings, scope: Scope) -> Rebuilt:
    """The crawl's frontier from its pages and links (see the module docstring)."""
    done: set[str] = set()
    reached: dict[str, int] = {}  # url -> least depth it was reached at
    p = pages.c
    rows = select(p.url, p.final_url, p.depth, p.status, p.error).where(p.crawl_id == crawl_id)
    for url, final_url, depth, status, error in conn.execute(rows):
        done.add(url)
        if final_url != url and error is None:
            if 300 <= (status or 0) < 400:
                reach(reached, [final_url], depth)  # a redirect left to be crawled as its own URL
            else:
                done.add(final_url)  # followed in place: this row stands for it
    found = select(links.c.url, p.depth).join(pages, links.c.page_id == p.id).where(p.crawl_id == crawl_id)
    if not settings.ignore_robots:
        found = found.where(links.c.nofollow.is_(False))
    for url, depth in conn.execute(found):
        if settings.max_depth is None or depth + 1 <= settings.max_depth:
            reach(reached, [url], depth + 1)
    given = [(url, host_of(url), 0) for url in dict.fromkeys([*seeds, *settings.sitemap]) if url not in done]
    return Rebuilt(given + admitted(reached, done, settings, scope), sorted(done))


def reach(reached: dict[str, int], urls: Iterable[str], depth: int) -> None:
    for url in urls:
        if depth < reached.get(url, depth + 1):
            reached[url] = depth


def admitted(reached: dict[str, int], done: set[str], settings: Settings, scope: Scope) -> list[Entry]:
    """The reached URLs not done that discovery would queue, least depth first."""
    discovery = Discovery(scope, settings.max_depth, settings.limits.max_url_length, HostBudget(0),
                          not settings.ignore_robots)
    for url, depth in sorted(reached.items(), key=lambda item: item[1]):
        if url not in done:
            discovery.urls([url], depth)
    return discovery.take().new
