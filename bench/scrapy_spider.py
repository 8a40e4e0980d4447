"""The Scrapy side of the benchmark: a spider written the way a good Scrapy user would write it.

It stores what `crawl` stores for an HTML page, into SQLite: title, meta description (else
og:description), the visible text of <body> (no script, style, template or noscript), whitespace-collapsed,
and every distinct link (absolute, http(s), fragment dropped) with its anchor text (else the alt of its
image, aria-label or title), as `crawl` defines them. Extraction is parsel (lxml) XPath; the in-scope
links are followed (allowed_domains; Scrapy's dupefilter skips repeats). Writes are batched: one
executemany per table and one transaction per 500 pages, in WAL mode.

Settings are Scrapy's defaults except: the concurrency (total and per domain), robots.txt obeyed, the
download timeout and user agent set to `crawl`'s, the telnet console off (it only opens a port) and the
log level WARNING. Scrapy remains a benchmark dependency only: `pip install -r bench/requirements.txt`.

    python bench/scrapy_spider.py URL DB [--concurrency 50]
"""

from __future__ import annotations

import argparse
import sqlite3
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import urldefrag, urlsplit

import scrapy
from scrapy.crawler import CrawlerProcess
from scrapy.http import HtmlResponse, Response
from scrapy.selector import Selector

BATCH = 500
SCHEMA = """
PRAGMA journal_mode=WAL;
PRAGMA synchronous=NORMAL;
CREATE TABLE IF NOT EXISTS pages (id INTEGER PRIMARY KEY, url TEXT NOT NULL UNIQUE, status INTEGER,
    title TEXT, description TEXT, text TEXT);
CREATE TABLE IF NOT EXISTS links (id INTEGER PRIMARY KEY, page_id INTEGER NOT NULL REFERENCES pages(id),
    url TEXT NOT NULL, anchor TEXT);
CREATE INDEX IF NOT EXISTS ix_links_page_id ON links (page_id);
CREATE INDEX IF NOT EXISTS ix_links_url ON links (url);
"""
TEXT_XPATH = (
    "//body//text()[not(ancestor::script or ancestor::style or ancestor::template or ancestor::noscript)]"
)


def collapse(text: str | None) -> str:
    return " ".join((text or "").split())


class SitePipeline:
    """Pages and their links into SQLite, BATCH pages per transaction."""

    def __init__(self, db: str) -> None:
        self.db = db

    @classmethod
    def from_crawler(cls, crawler: Any) -> SitePipeline:
        return cls(crawler.settings.get("BENCH_DB"))

    def open_spider(self, spider: scrapy.Spider | None = None) -> None:
        self.conn = sqlite3.connect(self.db, isolation_level=None)
        self.conn.executescript(SCHEMA)
        self.pages: list[tuple[Any, ...]] = []
        self.links: list[tuple[Any, ...]] = []
        self.next_id = 1

    def process_item(self, item: dict[str, Any], spider: scrapy.Spider | None = None) -> dict[str, Any]:
        page_id, self.next_id = self.next_id, self.next_id + 1
        self.pages.append((page_id, item["url"], item["status"], item["title"], item["description"],
                           item["text"]))
        self.links.extend((page_id, url, anchor) for url, anchor in item["links"])
        if len(self.pages) >= BATCH:
            self.flush()
        return item

    def flush(self) -> None:
        with self.conn:
            self.conn.execute("BEGIN")
            self.conn.executemany("INSERT OR IGNORE INTO pages VALUES (?, ?, ?, ?, ?, ?)", self.pages)
            self.conn.executemany("INSERT INTO links (page_id, url, anchor) VALUES (?, ?, ?)", self.links)
        self.pages, self.links = [], []

    def close_spider(self, spider: scrapy.Spider | None = None) -> None:
        self.flush()
        self.conn.close()


class SiteSpider(scrapy.Spider):
    name = "site"

    def __init__(self, url: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.url = url
        self.allowed_domains = [urlsplit(url).hostname or ""]

    async def start(self) -> AsyncIterator[Any]:
        """The seed through the dupefilter too (start_urls bypass it: the home page would come twice)."""
        yield scrapy.Request(self.url, callback=self.parse)

    def parse(self, response: Response) -> Iterator[Any]:
        if not isinstance(response, HtmlResponse):
            return
        links = self.links(response)
        yield {
            "url": response.url,
            "status": response.status,
            "title": collapse(response.xpath("//title/text()").get()) or None,
            "description": self.description(response),
            "text": collapse(" ".join(response.xpath(TEXT_XPATH).getall())),
            "links": list(links.items()),
        }
        for url in links:
            yield scrapy.Request(url, callback=self.parse)

    @staticmethod
    def links(response: Response) -> dict[str, str]:
        """Distinct http(s) link URLs without fragment -> the first non-empty anchor text."""
        found: dict[str, str] = {}
        for a in response.xpath("//a[@href] | //area[@href]"):
            url = urldefrag(response.urljoin(a.attrib["href"].strip()))[0]
            if url.startswith(("http://", "https://")) and not found.get(url):
                found[url] = collapse(a.xpath("string()").get()) or SiteSpider.fallback_anchor(a)
        return found

    @staticmethod
    def fallback_anchor(a: Selector) -> str:
        for xpath in ("@alt", ".//img/@alt", "@aria-label", "@title"):
            if value := collapse(a.xpath(xpath).get()):
                return value
        return ""

    @staticmethod
    def description(response: Response) -> str | None:
        for name in ("description", "og:description"):
            value = response.xpath(f'//meta[@name="{name}" or @property="{name}"]/@content').get()
            if value and collapse(value):
                return collapse(value)
        return None


def settings(db: str, concurrency: int) -> dict[str, Any]:
    return {
        "BENCH_DB": db,
        "CONCURRENT_REQUESTS": concurrency,
        "CONCURRENT_REQUESTS_PER_DOMAIN": concurrency,
        "ROBOTSTXT_OBEY": True,
        "DOWNLOAD_TIMEOUT": 30,
        "USER_AGENT": "crawler/0.1 (+https://github.com/crawler)",
        "TELNETCONSOLE_ENABLED": False,
        "LOG_LEVEL": "WARNING",
        "ITEM_PIPELINES": {f"{__name__}.SitePipeline": 300},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description="Crawl URL with Scrapy into the SQLite file DB.")
    parser.add_argument("url")
    parser.add_argument("db")
    parser.add_argument("--concurrency", type=int, default=50)
    args = parser.parse_args()
    process = CrawlerProcess(settings(args.db, args.concurrency))
    process.crawl(SiteSpider, url=args.url)
    process.start()


if __name__ == "__main__":
    main()
