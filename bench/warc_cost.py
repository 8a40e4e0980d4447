"""What `--warc` costs: pages/s and CPU of the bench crawl with and without it, side by side.

Starts the bundled synthetic site (crawler.bench.site: realistic ~30 KB pages, ~40 links), and crawls it
on each engine with and without `--warc`, in rotating order over several rounds, into fresh temporary
databases (crawler.bench.measure: wall time, CPU of the process tree, peak RSS). Prints one row per run
and the median pages/s of each variant.

    python bench/warc_cost.py                        # 1000 pages, gevent and threads, 3 rounds
    python bench/warc_cost.py --pages 3000 --rounds 5 --engines gevent

Not a test: nothing here is asserted; the numbers go in the README.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile

from crawler.bench import crawl_command, measure, site, stored_pages


def one_run(url: str, engine: str, warc: bool, concurrency: int, workers: int) -> tuple[float, float, int]:
    """(pages/s, CPU ms per page, WARC bytes) of one crawl of the site."""
    with tempfile.TemporaryDirectory(prefix="crawl-warc-bench-") as tmp:
        db = os.path.join(tmp, "bench.db")
        cmd = crawl_command(url, db, engine, concurrency, workers)
        if warc:
            cmd += ["--warc", os.path.join(tmp, "bench.warc.gz")]
        m = measure(cmd)
        if m.returncode != 0:
            raise SystemExit(f"crawl failed: {m.stderr[-500:]}")
        pages = stored_pages(db)
        size = sum(os.path.getsize(os.path.join(tmp, f)) for f in os.listdir(tmp) if ".warc" in f)
        return pages / m.seconds, m.cpu_seconds * 1000 / max(pages, 1), size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--engines", default="gevent,threads")
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--parse-workers", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    variants = [(engine, warc) for engine in args.engines.split(",") for warc in (False, True)]
    rates: dict[tuple[str, bool], list[float]] = {v: [] for v in variants}
    print("| round | engine | --warc | pages/s | CPU ms/page | WARC MiB |\n|---|---|---|---|---|---|")
    with site(args.pages) as url:
        for round_ in range(args.rounds):
            for engine, warc in variants[round_ % len(variants):] + variants[: round_ % len(variants)]:
                rate, cpu, size = one_run(url, engine, warc, args.concurrency, args.parse_workers)
                rates[(engine, warc)].append(rate)
                print(f"| {round_ + 1} | {engine} | {'yes' if warc else 'no'} | {rate:.1f} | {cpu:.1f} | "
                      f"{size / 2**20:.1f} |")
    for (engine, warc), values in rates.items():
        print(f"{engine:8} {'with' if warc else 'without'} --warc: median {statistics.median(values):.1f} pages/s")


if __name__ == "__main__":
    main()
