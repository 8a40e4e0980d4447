"""A recrawl with validators against the first crawl of the same unchanged site: seconds and body bytes.

Starts `python -m crawler.testsite --pages N --html realistic` (pages carry an ETag; a matching
If-None-Match gets a 304), crawls it with the real CLI into a temporary SQLite file, then runs
`crawl recrawl`, and prints each run's wall time and the body bytes the site served (its /_bytes counter).

    python bench/recrawl.py                     # 1000 pages, gevent
    python bench/recrawl.py --pages 300 --engine threads

Not a test: nothing here is asserted (tests/integration/test_recrawl.py asserts the bytes).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from crawler.testsite import BYTES_PATH

ROOT = Path(__file__).resolve().parent.parent


def served(url: str) -> int:
    with urllib.request.urlopen(url + BYTES_PATH.lstrip("/"), timeout=10) as resp:
        return int(resp.read())


def timed(*args: str) -> float:
    began = time.monotonic()
    subprocess.run([sys.executable, "-m", "crawler", *args, "--quiet"], check=True, cwd=ROOT, timeout=1800)
    return time.monotonic() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=1000)
    parser.add_argument("--engine", choices=["gevent", "threads"], default="gevent")
    parser.add_argument("--parse-workers", default="2")
    args = parser.parse_args()
    site = subprocess.Popen([sys.executable, "-m", "crawler.testsite", "--pages", str(args.pages), "--html",
                             "realistic"], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert site.stdout is not None
        url = site.stdout.readline().strip()
        with tempfile.TemporaryDirectory() as tmp:
            common = ["--db", str(Path(tmp) / "crawl.db"), "--engine", args.engine, "--parse-workers",
                      args.parse_workers, "--concurrency", "32", "--per-host", "32"]
            first = timed(url, *common)
            first_bytes = served(url)
            again = timed("recrawl", *common)
            again_bytes = served(url) - first_bytes
    finally:
        site.terminate()
        site.wait(10)
    print(f"{args.pages} pages, {args.engine}")
    print(f"first crawl: {first:6.1f} s  {first_bytes:>12,} body bytes")
    print(f"recrawl:     {again:6.1f} s  {again_bytes:>12,} body bytes")
    print(f"recrawl: {first / again:.1f}x faster, {100 * again_bytes / first_bytes:.2f}% of the bytes")


if __name__ == "__main__":
    main()
