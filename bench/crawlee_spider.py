"""The Crawlee side of the benchmark: Crawlee for Python's BeautifulSoupCrawler or ParselCrawler, written
the way a good Crawlee user would write it.

The request handler stores what `crawl` stores for an HTML page, into SQLite (bench/peer.py: title,
description, text and links, one transaction per 500 pages, in WAL mode), extracted from the crawler's
own parse (`context.soup`, or `context.selector`: bench/fields.py), and adds the page's links to the
request queue with Crawlee's `same-hostname` strategy (the seeds' hosts: `crawl --scope host`); the queue
skips repeats.

Options are Crawlee's defaults except: the concurrency pinned (ConcurrencySettings with min = max =
desired = --concurrency: its autoscaling would otherwise start at 10 and probe), its blocked-page check
off (retry_on_blocked=False: it looks for captcha pages and rotates sessions, which `crawl` does not do),
robots.txt obeyed (respect_robots_txt_file=True), the log level WARNING, and its storage (the default
file-system request queue and key-value store) in a directory of its own, purged at the start and
removed at the end. Crawlee has no per-host limit: on one host its concurrency is the per-host one.
Crawlee remains a benchmark dependency only: `pip install -r bench/requirements.txt`.

    python bench/crawlee_spider.py SEEDS DB --parser bs|parsel [--concurrency 50] [--storage DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import tempfile
from collections.abc import Callable
from typing import Any

from crawlee import ConcurrencySettings
from crawlee.configuration import Configuration
from crawlee.crawlers import (
    BeautifulSoupCrawler,
    BeautifulSoupCrawlingContext,
    ParselCrawler,
    ParselCrawlingContext,
)
from fields import parsel_fields, soup_fields
from peer import PageWriter, read_seeds

CRAWLERS: dict[str, tuple[Any, Callable[[Any], dict[str, Any]]]] = {
    "bs": (BeautifulSoupCrawler, lambda context: soup_fields(context.soup, context.request.loaded_url
                                                             or context.request.url)),
    "parsel": (ParselCrawler, lambda context: parsel_fields(context.selector, context.request.loaded_url
                                                            or context.request.url)),
}


def crawler_for(parser: str, concurrency: int, storage: str) -> Any:
    """The crawler, configured as the module docstring says."""
    crawler_class, _ = CRAWLERS[parser]
    pinned = ConcurrencySettings(min_concurrency=concurrency, max_concurrency=concurrency,
                                 desired_concurrency=concurrency)
    configuration = Configuration(storage_dir=storage, purge_on_start=True, log_level="WARNING")
    return crawler_class(configuration=configuration, concurrency_settings=pinned, retry_on_blocked=False,
                         respect_robots_txt_file=True)


def handler_for(parser: str, writer: PageWriter) -> Callable[[Any], Any]:
    """The request handler: an HTML page's fields into `writer`, its same-host links into the queue."""
    _, extract = CRAWLERS[parser]

    async def handle(context: BeautifulSoupCrawlingContext | ParselCrawlingContext) -> None:
        response = context.http_response
        if not response.headers.get("content-type", "").startswith("text/html"):
            return
        fields = extract(context)
        writer.add({"url": context.request.loaded_url or context.request.url, "status": response.status_code,
                    **fields})
        await context.add_requests([url for url, _ in fields["links"]], strategy="same-hostname")

    return handle


async def crawl(seeds: list[str], db: str, parser: str, concurrency: int, storage: str) -> None:
    crawler = crawler_for(parser, concurrency, storage)
    writer = PageWriter(db)
    crawler.router.default_handler(handler_for(parser, writer))
    try:
        await crawler.run(seeds)
    finally:
        writer.close()


def main() -> None:
    parser = argparse.ArgumentParser(description="Crawl SEEDS with Crawlee into the SQLite file DB.")
    parser.add_argument("seeds", help="a URL, or a file of URLs one a line")
    parser.add_argument("db")
    parser.add_argument("--parser", choices=sorted(CRAWLERS), required=True)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--storage", default=None, help="Crawlee's storage directory (default: a temporary one)")
    args = parser.parse_args()
    storage = args.storage or tempfile.mkdtemp(prefix="crawlee-storage-")
    try:
        asyncio.run(crawl(read_seeds(args.seeds), args.db, args.parser, args.concurrency, storage))
    finally:
        shutil.rmtree(storage, ignore_errors=True)


if __name__ == "__main__":
    main()
