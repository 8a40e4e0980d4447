"""`crawl bench` and the measuring it is built on (crawler.bench); bench/compare.py's pieces that need no nginx."""

from __future__ import annotations

import importlib
import os
import re
import sys
import tempfile
from pathlib import Path
from types import ModuleType

import pytest
from bs4 import BeautifulSoup
from conftest import ROOT, run_cli

from crawler import bench
from crawler.testsite import links_of, render_realistic, write_site

FIGURE = re.compile(r"^(pages|seconds|pages/s|CPU ms/page|peak memory)\s+([0-9.]+)", re.MULTILINE)


def leftovers() -> set[str]:
    return {p.name for p in Path(tempfile.gettempdir()).glob("crawl-bench-*")}


def test_crawl_bench_prints_its_figures_and_removes_what_it_created() -> None:
    before = leftovers()
    result = run_cli("bench", "--pages", "40", "--concurrency", "8", "--parse-workers", "1", timeout=60)
    assert result.returncode == 0, result.stderr
    figures = dict(FIGURE.findall(result.stdout))
    assert set(figures) == {"pages", "seconds", "pages/s", "CPU ms/page", "peak memory"}, result.stdout
    assert int(figures["pages"]) == 40
    assert float(figures["pages/s"]) > 0 and float(figures["CPU ms/page"]) > 0
    assert float(figures["peak memory"]) > 10  # MiB: a Python process tree, summed
    assert leftovers() <= before


def test_bench_help() -> None:
    result = run_cli("bench", "--help")
    assert result.returncode == 0
    for option in ("--pages", "--engine", "--concurrency", "--parse-workers"):
        assert option in result.stdout


def test_measure_counts_the_cpu_and_memory_of_the_whole_tree() -> None:
    child = "import sys, subprocess; subprocess.run([sys.executable, '-c', " \
            "'b = bytearray(64 << 20); sum(range(20_000_000))'])"  # held ~1 s: many samples
    measurement = bench.measure([sys.executable, "-c", child])
    assert measurement.returncode == 0
    assert measurement.cpu_seconds > 0.02  # the grandchild's loop is counted
    assert measurement.peak_rss > 64 << 20  # ... and its memory


def test_tree_of_includes_the_process_itself() -> None:
    assert bench.tree_of(os.getpid())[0] == os.getpid()
    assert bench.rss_of(os.getpid()) > 0
    assert bench.rss_of(2**22 + 12345) == 0  # no such process


def test_realistic_pages_look_like_articles() -> None:
    html = render_realistic(7, 5000, 40, 30_000).decode()
    assert 25_000 < len(html) < 36_000
    for part in ('<meta name="description"', "<nav", "<article", "<aside", "<footer", "<script", "<style"):
        assert part in html
    for j in links_of(7, 5000, 40):
        assert f'href="{"/" if j == 0 else f"/page/{j}"}"' in html


def test_write_site_writes_static_files(tmp_path: Path) -> None:
    write_site(str(tmp_path), 5, 3, 2000)
    assert (tmp_path / "robots.txt").read_bytes().startswith(b"User-agent: *")
    assert (tmp_path / "index.html").exists() and (tmp_path / "page" / "4").exists()
    assert not (tmp_path / "page" / "5").exists()


def bench_module(name: str) -> ModuleType:
    """A script of bench/, imported as the module it is there (its sibling imports included)."""
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(str(ROOT / "bench"))


def test_compare_summary_has_the_cpu_split_and_the_ratios_to_each_peer() -> None:
    compare = bench_module("compare")
    runs = [compare.Run(name, round_, 100, bench.Measurement(seconds * round_, 1.0, 100 << 20, 0, "", own))
            for round_ in (1, 2)
            for name, seconds, own in (("gevent", 1.0, 0.4), ("threads", 1.25, 0.5), ("scrapy", 4.0, 1.0),
                                       ("crawlee-bs", 5.0, 1.0))]
    table = compare.summary(runs, ["gevent", "threads", "scrapy", "crawlee-bs"])
    assert "| gevent | 50.0 | 75.0 | 100.0 | 4.0 | 6.0 | 10.0 | 100 |" in table
    assert "| scrapy | 12.5 | 18.8 | 25.0 | 10.0 | 0.0 | 10.0 | 100 |" in table
    assert "gevent / scrapy: pages/s x4.00 (rounds: x4.00, x4.00)" in table
    assert "threads / crawlee-bs: pages/s x4.00" in table
    assert "threads / gevent: pages/s x0.80" in table
    assert "scrapy / " not in table


def test_measure_splits_the_cpu_of_the_process_from_its_children() -> None:
    child = "import sys, subprocess; subprocess.run([sys.executable, '-c', 'sum(range(20_000_000))'])"
    measurement = bench.measure([sys.executable, "-c", child])
    assert measurement.children_cpu_seconds > 0.1  # the grandchild's loop
    assert 0 < measurement.root_cpu_seconds < measurement.children_cpu_seconds


def test_peer_fields_agree_with_each_other_on_a_realistic_page() -> None:
    selector = pytest.importorskip("parsel", reason="a benchmark dependency: bench/requirements.txt").Selector
    fields, html = bench_module("fields"), render_realistic(7, 5000, 40, 30_000).decode()
    url = "http://127.0.0.1:1/page/7"
    by_parsel, by_soup = fields.parsel_fields(selector(html), url), fields.soup_fields(BeautifulSoup(html, "lxml"), url)
    assert by_parsel["title"] == by_soup["title"] and by_parsel["description"] == by_soup["description"]
    assert [u for u, _ in by_parsel["links"]] == [u for u, _ in by_soup["links"]]
    assert len(by_parsel["links"]) > 30 and by_soup["text"].split()[:20] == by_parsel["text"].split()[:20]


def test_broad_hosts_are_distinct_loopback_addresses() -> None:
    addresses = bench_module("sites").broad_addresses(1000)
    assert len(set(addresses)) == 1000 and addresses[0] == "127.0.1.1" and addresses[-1] == "127.0.4.250"
