"""`crawl` beside Scrapy on the same local site: pages/s, CPU per page and peak memory, A B A B.

Writes the synthetic site (crawler.testsite, realistic ~30 KB pages with ~40 links each) as static files,
serves them with nginx on 127.0.0.1 (so the server is not what is measured), then crawls the whole site
once per contender per round, each run into a fresh SQLite file: `crawl` on the gevent engine, `crawl`
on the threads engine, and the Scrapy spider in bench/scrapy_spider.py, with the same concurrency and
robots.txt obeyed by both. The order rotates every round, so a slow moment of a shared machine does not
land on one contender. Each run must store every page with its title, description and text, else the
script stops. Prints min/median/max pages/s, median CPU ms per page (the whole process tree), median
peak memory (RSS summed over the process tree) and the ratios.

Needs nginx (`apt-get install nginx-light`) and Scrapy (`pip install -r bench/requirements.txt`).

    python bench/compare.py [--pages 5000] [--rounds 3] [--concurrency 50] [--only gevent,threads,scrapy]
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from crawler.bench import Measurement, crawl_command, measure
from crawler.testsite import write_site

HERE = Path(__file__).resolve().parent
FANOUT, SIZE = 40, 30_000
NGINX_CONF = """daemon off;
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log warn;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  types {{ text/html html; text/plain txt; }}
  default_type text/html;
  charset utf-8;
  sendfile on;
  open_file_cache max=10000;
  keepalive_requests 1000000;
  client_body_temp_path {tmp}/body;
  proxy_temp_path {tmp}/proxy;
  fastcgi_temp_path {tmp}/fastcgi;
  uwsgi_temp_path {tmp}/uwsgi;
  scgi_temp_path {tmp}/scgi;
  server {{
    listen 127.0.0.1:{port};
    root {root};
    location / {{ try_files $uri $uri/index.html =404; }}
  }}
}}
"""


@dataclass
class Run:
    contender: str
    pages: int
    measurement: Measurement

    @property
    def rate(self) -> float:
        return self.pages / self.measurement.seconds

    @property
    def cpu_ms(self) -> float:
        return 1000 * self.measurement.cpu_seconds / self.pages

    @property
    def peak_mib(self) -> float:
        return self.measurement.peak_rss / 2**20


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def nginx(root: Path, tmp: Path) -> Iterator[str]:
    """nginx serving `root` on a free 127.0.0.1 port until the block ends; yields the base URL."""
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    port = free_port()
    for folder in (tmp, root):  # nginx's workers run as an unprivileged user: let them read the site
        folder.chmod(0o755)
    conf = tmp / "nginx.conf"
    conf.write_text(NGINX_CONF.format(tmp=tmp, port=port, root=root))
    proc = subprocess.Popen([binary, "-c", str(conf), "-p", str(tmp)], stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/"
    try:
        wait_for(url, proc)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def wait_for(url: str, proc: subprocess.Popen[bytes]) -> None:
    for _ in range(100):
        if proc.poll() is not None:
            raise SystemExit(f"nginx exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url + "robots.txt", timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit("nginx did not answer")


def command(contender: str, url: str, db: str, args: argparse.Namespace) -> list[str]:
    if contender == "scrapy":
        return [sys.executable, str(HERE / "scrapy_spider.py"), url, db, "--concurrency", str(args.concurrency)]
    return crawl_command(url, db, contender, args.concurrency, args.parse_workers)


def complete_pages(db: str) -> tuple[int, int]:
    """(pages stored with title, description and text; link rows): the same query fits both schemas."""
    with sqlite3.connect(db) as conn:
        pages = conn.execute("SELECT count(*) FROM pages WHERE title IS NOT NULL AND description IS NOT NULL"
                             " AND length(text) > 0").fetchone()[0]
        links = conn.execute("SELECT count(*) FROM links").fetchone()[0]
    return int(pages), int(links)


def run_once(contender: str, url: str, tmp: Path, args: argparse.Namespace) -> Run:
    db = tmp / f"{contender}.db"
    measurement = measure(command(contender, url, str(db), args))
    if measurement.returncode != 0:
        raise SystemExit(f"{contender} failed ({measurement.returncode}): {measurement.stderr[-2000:]}")
    pages, links = complete_pages(str(db))
    if pages != args.pages:
        raise SystemExit(f"{contender} stored {pages} complete pages of {args.pages}")
    for path in tmp.glob(f"{contender}.db*"):
        path.unlink()
    run = Run(contender, pages, measurement)
    print(f"  {contender:8s} {run.rate:7.1f} pages/s {run.cpu_ms:6.1f} CPU ms/page {run.peak_mib:6.0f} MiB"
          f"  ({links} links, {measurement.seconds:.1f} s)", flush=True)
    return run


def summary(runs: list[Run], contenders: list[str]) -> str:
    rows = ["| | pages/s min | median | max | CPU ms/page | peak MiB |", "|---|---|---|---|---|---|"]
    medians: dict[str, tuple[float, float]] = {}
    for name in contenders:
        mine = [r for r in runs if r.contender == name]
        rates = sorted(r.rate for r in mine)
        cpu, peak = statistics.median(r.cpu_ms for r in mine), statistics.median(r.peak_mib for r in mine)
        medians[name] = (statistics.median(rates), peak)
        rows.append(f"| {name} | {rates[0]:.1f} | {medians[name][0]:.1f} | {rates[-1]:.1f} | {cpu:.1f} | {peak:.0f} |")
    rows.append("")
    for name in contenders:
        for other in contenders:
            if name != other and other in ("scrapy", "gevent") and (other == "scrapy" or name == "threads"):
                rate, peak = (medians[name][i] / medians[other][i] for i in (0, 1))
                rows.append(f"{name} / {other}: pages/s x{rate:.2f}, peak memory x{peak:.2f}")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--parse-workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--only", default="gevent,threads,scrapy", help="contenders, comma-separated")
    args = parser.parse_args()
    contenders = args.only.split(",")
    with tempfile.TemporaryDirectory(prefix="crawl-compare-") as name:
        tmp = Path(name)
        tmp.chmod(0o755)  # nginx's workers drop root privileges: they must be able to read the site
        write_site(str(tmp / "site"), args.pages, FANOUT, SIZE, html="realistic")
        with nginx(tmp / "site", tmp) as url:
            runs = []
            for round_ in range(args.rounds):
                print(f"round {round_ + 1} of {args.rounds}", flush=True)
                order = contenders[round_ % len(contenders):] + contenders[:round_ % len(contenders)]
                runs += [run_once(contender, url, tmp, args) for contender in order]
    print(summary(runs, contenders))


if __name__ == "__main__":
    main()
