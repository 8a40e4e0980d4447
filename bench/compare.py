"""`crawl` beside Scrapy and Crawlee on the same local site: pages/s, CPU per page by process, peak memory.

Serves a site with nginx on loopback (bench/sites.py: `synthetic`, the default, ~30 KB pages with ~40
links; `debian-python-docs`, the HTML docs of Debian's python3.11-doc; `broad`, 1000 hosts of 20 pages,
one seed each) and crawls the whole of it once per contender per round, each run into a fresh SQLite
file: `crawl` on the gevent engine and on the threads engine (and, as `gevent-in-crawl`, on gevent with
`--no-fetch-processes`: the fetch in the crawl process), the Scrapy spider of bench/scrapy_spider.py
and Crawlee's BeautifulSoupCrawler and ParselCrawler (bench/crawlee_spider.py), all with the same
concurrency, the same per-host limit where the peer has one (Crawlee has none), robots.txt obeyed and
same-host links only. The order rotates every round, so a slow moment of a shared machine does not land
on one contender. Each run must store every page with its title, text (and description, where the site
has them), else the script stops; on the docs, whose page count is not known beforehand, every run must
store as many as the first. Prints, per run and then per contender (min/median/max pages/s; the median of
the rest): pages/s; CPU ms per page of the crawl process itself and of its child processes (for `crawl`
the extraction processes; the peers run in one process); peak memory (RSS summed over the process tree);
and the ratios of `crawl` to each peer, per round and overall.

Needs nginx (`apt-get install nginx-light`), for the docs python3.11-doc, and the peers
(`pip install -r bench/requirements.txt`).

    python bench/compare.py [--site synthetic|debian-python-docs|broad] [--pages 5000] [--rounds 3]
        [--concurrency 50] [--per-host N] [--only gevent,threads,gevent-in-crawl,scrapy,crawlee-bs,crawlee-parsel]
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import statistics
import sys
import tempfile
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path

from sites import Site, broad, debian_python_docs, synthetic

from crawler.bench import Measurement, crawl_command, measure
from crawler.settings import Limits

HERE = Path(__file__).resolve().parent
OURS, PEERS = ("gevent", "threads", "gevent-in-crawl"), ("scrapy", "crawlee-bs", "crawlee-parsel")
IN_CRAWL = "-in-crawl"  # our engine with the fetch in the crawl process (--no-fetch-processes)
SITES: dict[str, Callable[[Path, argparse.Namespace], AbstractContextManager[Site]]] = {
    "synthetic": lambda tmp, args: synthetic(tmp, args.pages),
    "debian-python-docs": lambda tmp, args: debian_python_docs(tmp),
    "broad": lambda tmp, args: broad(tmp, args.hosts, args.host_pages),
}


@dataclass
class Run:
    contender: str
    round: int
    pages: int
    measurement: Measurement

    @property
    def rate(self) -> float:
        return self.pages / self.measurement.seconds

    @property
    def cpu_ms(self) -> float:
        return 1000 * self.measurement.cpu_seconds / self.pages

    @property
    def own_ms(self) -> float:
        return 1000 * self.measurement.root_cpu_seconds / self.pages

    @property
    def children_ms(self) -> float:
        return 1000 * self.measurement.children_cpu_seconds / self.pages

    @property
    def peak_mib(self) -> float:
        return self.measurement.peak_rss / 2**20


def command(contender: str, site: Site, db: str, tmp: Path, args: argparse.Namespace) -> list[str]:
    if contender == "scrapy":
        return [sys.executable, str(HERE / "scrapy_spider.py"), site.seeds, db,
                "--concurrency", str(args.concurrency), "--per-host", str(args.per_host)]
    if contender.startswith("crawlee-"):
        return [sys.executable, str(HERE / "crawlee_spider.py"), site.seeds, db,
                "--parser", contender.removeprefix("crawlee-"), "--concurrency", str(args.concurrency),
                "--storage", str(tmp / "crawlee-storage")]
    engine = contender.removesuffix(IN_CRAWL)
    fetch = ["--no-fetch-processes"] if contender.endswith(IN_CRAWL) else []
    return crawl_command(site.seeds, db, engine, args.concurrency, args.parse_workers, args.per_host) + fetch


def complete_pages(db: str, described: bool) -> tuple[int, int]:
    """(HTML pages stored with status 200, title, text and, if `described`, description; link rows):
    the same query fits our schema and the peers' (bench/peer.py)."""
    description = " AND description IS NOT NULL" if described else ""
    with sqlite3.connect(db) as conn:
        pages = conn.execute("SELECT count(*) FROM pages WHERE status = 200 AND title IS NOT NULL"
                             f" AND length(text) > 0{description}").fetchone()[0]
        links = conn.execute("SELECT count(*) FROM links").fetchone()[0]
    return int(pages), int(links)


def run_once(contender: str, round_: int, site: Site, tmp: Path, args: argparse.Namespace,
             expected: dict[str, int]) -> Run:
    """One crawl of the whole site, checked: every page complete (`expected`: what the first run of an
    unknown-size site stored), nothing of the run left on disk."""
    db = tmp / f"{contender}.db"
    measurement = measure(command(contender, site, str(db), tmp, args))
    if measurement.returncode != 0:
        raise SystemExit(f"{contender} failed ({measurement.returncode}): {measurement.stderr[-2000:]}")
    pages, links = complete_pages(str(db), site.described)
    if pages != expected.setdefault("pages", site.pages or pages):
        raise SystemExit(f"{contender} stored {pages} complete pages of {expected['pages']}")
    for path in tmp.glob(f"{contender}.db*"):
        path.unlink()
    if (tmp / "crawlee-storage").exists() or Path("storage").exists():
        raise SystemExit(f"{contender} left Crawlee storage behind")
    run = Run(contender, round_, pages, measurement)
    print(f"  {contender:14s} {run.rate:7.1f} pages/s  CPU ms/page {run.own_ms:5.1f} + {run.children_ms:4.1f}"
          f"  {run.peak_mib:5.0f} MiB  ({pages} pages, {links} links, {measurement.seconds:.1f} s)", flush=True)
    return run


def median(runs: list[Run], name: str, value: Callable[[Run], float]) -> float:
    return statistics.median(value(r) for r in runs if r.contender == name)


def table(runs: list[Run], contenders: list[str]) -> list[str]:
    head = "| | pages/s min | median | max | CPU ms/page: crawl process | child processes | total | peak MiB |"
    rows = [head, "|---|---|---|---|---|---|---|---|"]
    for name in contenders:
        rates = sorted(r.rate for r in runs if r.contender == name)
        own, children, cpu, peak = (median(runs, name, f) for f in (
            lambda r: r.own_ms, lambda r: r.children_ms, lambda r: r.cpu_ms, lambda r: r.peak_mib))
        rows.append(f"| {name} | {rates[0]:.1f} | {statistics.median(rates):.1f} | {rates[-1]:.1f} | {own:.1f}"
                    f" | {children:.1f} | {cpu:.1f} | {peak:.0f} |")
    return rows


def ratio(runs: list[Run], name: str, other: str) -> str:
    """`name` over `other`: median pages/s, CPU per page and peak memory, and pages/s round by round."""
    rate, cpu, peak = (median(runs, name, f) / median(runs, other, f)
                       for f in (lambda r: r.rate, lambda r: r.cpu_ms, lambda r: r.peak_mib))
    rounds = sorted({r.round for r in runs})
    each = ", ".join(f"x{round_ratio(runs, name, other, n):.2f}" for n in rounds)
    return f"{name} / {other}: pages/s x{rate:.2f} (rounds: {each}), CPU/page x{cpu:.2f}, peak memory x{peak:.2f}"


def round_ratio(runs: list[Run], name: str, other: str, round_: int) -> float:
    """Pages/s of `name` over `other` in one round."""
    rate = {r.contender: r.rate for r in runs if r.round == round_}
    return rate[name] / rate[other]


def pairs(contenders: list[str]) -> list[tuple[str, str]]:
    """(ours, peer) for every peer, and threads and the fetch in the crawl process against gevent."""
    ours = [c for c in contenders if c in OURS]
    found = [(a, b) for a in ours for b in contenders if b in PEERS]
    return found + [(name, "gevent") for name in OURS[1:] if {name, "gevent"} <= set(contenders)]


def summary(runs: list[Run], contenders: list[str]) -> str:
    return "\n".join([*table(runs, contenders), "", *(ratio(runs, a, b) for a, b in pairs(contenders))])


def options() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--site", choices=sorted(SITES), default="synthetic")
    parser.add_argument("--pages", type=int, default=5000, help="the synthetic site's pages")
    parser.add_argument("--hosts", type=int, default=1000, help="the broad site's hosts")
    parser.add_argument("--host-pages", type=int, default=20, help="the broad site's pages per host")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--per-host", type=int, default=None,
                        help=f"requests in flight per host (default: the concurrency on one host, "
                             f"`crawl`'s default {Limits.per_host} on the broad site)")
    parser.add_argument("--parse-workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--only", default=",".join(OURS + PEERS), help="contenders, comma-separated")
    args = parser.parse_args()
    if args.per_host is None:
        args.per_host = Limits.per_host if args.site == "broad" else args.concurrency
    return args


def main() -> None:
    args = options()
    contenders = args.only.split(",")
    runs: list[Run] = []
    with tempfile.TemporaryDirectory(prefix="crawl-compare-") as name, SITES[args.site](Path(name), args) as site:
        print(f"{site.name}: {site.hosts} host(s), --concurrency {args.concurrency} --per-host {args.per_host}"
              f" --parse-workers {args.parse_workers}", flush=True)
        expected: dict[str, int] = {}
        for round_ in range(1, args.rounds + 1):
            print(f"round {round_} of {args.rounds}", flush=True)
            shift = (round_ - 1) % len(contenders)
            for contender in contenders[shift:] + contenders[:shift]:
                runs.append(run_once(contender, round_, site, Path(name), args, expected))
    print(summary(runs, contenders))


if __name__ == "__main__":
    main()
