"""The Scrapy side of the benchmark: a spider written the way a good Scrapy user would write it.

It stores what `crawl` stores for an HTML page, into SQLite (bench/peer.py: title, description, text
and links, one transaction per 500 pages, in WAL mode), extracted with parsel (lxml) XPath
(bench/fields.py). The in-scope links are followed (allowed_domains: the seeds' hosts; Scrapy's
dupefilter skips repeats).

Settings are Scrapy's defaults except: the concurrency in total and per host (CONCURRENT_REQUESTS and
CONCURRENT_REQUESTS_PER_DOMAIN, given as `crawl`'s --concurrency and --per-host), robots.txt obeyed, the
download timeout and user agent set to `crawl`'s, the telnet console off (it only opens a port) and the
log level WARNING. Scrapy remains a benchmark dependency only: `pip install -r bench/requirements.txt`.

    python bench/scrapy_spider.py SEEDS DB [--concurrency 50] [--per-host 50]   # SEEDS: a URL or a file of them
"""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator, Iterator
from typing import Any

import scrapy
from fields import parsel_fields
from peer import PageWriter, hosts_of, read_seeds
from scrapy.crawler import CrawlerProcess
from scrapy.http import HtmlResponse, Response


class SitePipeline:
    """The items into SQLite through bench/peer.py's PageWriter."""

    def __init__(self, db: str) -> None:
        self.db = db

    @classmethod
    def from_crawler(cls, crawler: Any) -> SitePipeline:
        return cls(crawler.settings.get("BENCH_DB"))

    def open_spider(self, spider: scrapy.Spider | None = None) -> None:
        self.writer = PageWriter(self.db)

    def process_item(self, item: dict[str, Any], spider: scrapy.Spider | None = None) -> dict[str, Any]:
        self.writer.add(item)
        return item

    def close_spider(self, spider: scrapy.Spider | None = None) -> None:
        self.writer.close()


class SiteSpider(scrapy.Spider):
    name = "site"

    def __init__(self, seeds: list[str], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.seeds = seeds
        self.allowed_domains = sorted(hosts_of(seeds))

    async def start(self) -> AsyncIterator[Any]:
        """The seeds through the dupefilter too (start_urls bypass it: a home page would come twice)."""
        for url in self.seeds:
            yield scrapy.Request(url, callback=self.parse)

    def parse(self, response: Response) -> Iterator[Any]:
        if not isinstance(response, HtmlResponse):
            return
        fields = parsel_fields(response.selector, response.url)
        yield {"url": response.url, "status": response.status, **fields}
        for url, _ in fields["links"]:
            yield scrapy.Request(url, callback=self.parse)


def settings(db: str, concurrency: int, per_host: int) -> dict[str, Any]:
    return {
        "BENCH_DB": db,
        "CONCURRENT_REQUESTS": concurrency,
        "CONCURRENT_REQUESTS_PER_DOMAIN": per_host,
        "ROBOTSTXT_OBEY": True,
        "DOWNLOAD_TIMEOUT": 30,
        "USER_AGENT": "crawler/0.1 (+https://github.com/crawler)",
        "TELNETCONSOLE_ENABLED": False,
        "LOG_LEVEL": "WARNING",
        "ITEM_PIPELINES": {f"{__name__}.SitePipeline": 300},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description="Crawl SEEDS with Scrapy into the SQLite file DB.")
    parser.add_argument("seeds", help="a URL, or a file of URLs one a line")
    parser.add_argument("db")
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--per-host", type=int, default=50)
    args = parser.parse_args()
    process = CrawlerProcess(settings(args.db, args.concurrency, args.per_host))
    process.crawl(SiteSpider, seeds=read_seeds(args.seeds))
    process.start()


if __name__ == "__main__":
    main()
