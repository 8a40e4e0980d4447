"""Settings: the frozen values a crawl runs with (what the CLI parses, what a resume reloads)."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field

MiB = 1024 * 1024
MAX_THREADS = 1024  # the threads engine's pool: beyond this, use gevent


@dataclass(frozen=True)
class Limits:
    """How hard we may push servers and how long we wait for them."""

    concurrency: int = 16  # requests in flight in total
    per_host: int = 4  # requests in flight to one host
    delay: float = 0.0  # minimum seconds between two request starts to one host
    timeout: float = 30.0  # whole-response deadline per attempt (connect + headers + body)
    retries: int = 2  # extra attempts on connection errors, timeouts, 429 and 5xx
    max_bytes: int = 10 * MiB  # body cap after decompression
    max_redirects: int = 10  # hops followed from one URL
    max_url_length: int = 2048  # longer URLs are skipped as traps
    max_crawl_delay: float = 30.0  # cap on robots.txt Crawl-delay
    max_retry_after: float = 60.0  # cap on a Retry-After header
    backoff: float = 0.5  # base of the exponential backoff between attempts
    parse_timeout: float = 60.0  # seconds one page's extraction may take (its process may have died)
    truncate: bool = False  # past max_bytes: keep the first max_bytes instead of failing (robots.txt)


@dataclass(frozen=True)
class Settings:
    """Everything one crawl needs besides its seeds' contents."""

    db: str = "sqlite:///crawl.db"
    engine: str = "gevent"
    limits: Limits = field(default_factory=Limits)
    max_depth: int | None = None  # seeds are depth 0; None = unlimited
    max_pages: int = 0  # 0 = no limit
    max_pages_per_host: int = 0  # 0 = no limit
    scope: str = "host"  # host | domain | all
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    parse_workers: int = 1
    fetch_processes: bool = True  # the extraction processes fetch their pages too (crawler.fetch.processes)
    user_agent: str = "crawler/0.1 (+https://github.com/crawler)"
    ignore_robots: bool = False
    allow_private: bool = False
    sitemap: tuple[str, ...] = ()  # sitemaps to read besides those robots.txt names (--sitemap)
    no_sitemaps: bool = False  # don't follow robots.txt's Sitemap: lines
    quiet: bool = False
    warc: str | None = None  # record every HTTP exchange in WARC files named after this path
    warc_max_size: int = 1024 * MiB  # a new WARC file once the current one reaches this size
    frontier: str | None = None  # a Redis URL: the frontier many `crawl worker` processes share
    frontier_key: str = ""  # the crawl's key prefix in that Redis (random, set when the crawl starts)
    lease: float = 60.0  # seconds a claim from a shared frontier lasts unrenewed
    header: tuple[str, ...] = ()  # extra request headers, "Name: value" (--header)
    proxy: str | None = None  # every request through this proxy URL
    ca_bundle: str | None = None  # trust these CAs for https
    insecure: bool = False  # don't check TLS certificates
    cookies: bool = True  # keep the cookies servers set (a bounded jar per host) and send them back

    def check(self) -> None:
        """Raise ValueError, one line, for values no crawl can run with: called before anything is
        written, for a new crawl and for a resumed one's settings with the command line's overrides."""
        if self.engine == "threads" and self.limits.concurrency > MAX_THREADS:
            raise ValueError(f"--concurrency {self.limits.concurrency} is more threads than the threads engine "
                             f"runs (at most {MAX_THREADS}); use --engine gevent for more")
        for url in self.sitemap:
            if not url.startswith(("http://", "https://")):
                raise ValueError(f"--sitemap {url!r}: not an http(s) URL")

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Settings:
        values = json.loads(text)
        values["limits"] = Limits(**values["limits"])
        for key in ("include", "exclude", "sitemap", "header"):
            values[key] = tuple(values.get(key, ()))
        return cls(**values)
