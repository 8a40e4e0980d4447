"""The sites bench/compare.py crawls, each served by nginx on loopback (bench/nginx.py).

  * synthetic: crawler.testsite's realistic pages (~30 KB articles, ~40 links each, a meta description)
    written as static files, one host (127.0.0.1), seeded at its home page.
  * debian-python-docs: a real site we did not make, the HTML documentation of Debian's python3.11-doc
    package (/usr/share/doc/python3.11/html, ~530 Sphinx pages from 10 KB to 2.5 MB, no meta
    description, no robots.txt), one host, seeded at its index page.
  * broad: HOSTS hosts of PAGES synthetic pages each, every one its own loopback address (127.0.1.1,
    127.0.1.2, ...) with its own robots.txt, one seed per host (a seeds file); one nginx listens on all
    of them and serves address A from root/A (every A a link to one tree: the hosts' pages are alike).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from nginx import nginx

from crawler.testsite import write_site

FANOUT, SIZE = 40, 30_000
DOCS = Path("/usr/share/doc/python3.11/html")
PER_OCTET = 250  # broad hosts per third octet: 127.0.1.1 ... 127.0.1.250, 127.0.2.1 ...


@dataclass(frozen=True)
class Site:
    """A served site: its seeds (a URL, or a seeds file), and what a complete crawl of it stores."""

    name: str
    seeds: str
    hosts: int
    pages: int | None  # HTML pages with all their fields; None: unknown, every run must agree
    described: bool  # its pages have a meta description, and every run must store it


@contextmanager
def synthetic(tmp: Path, pages: int) -> Iterator[Site]:
    write_site(str(tmp / "site"), pages, FANOUT, SIZE, html="realistic")
    (tmp / "site").chmod(0o755)
    with nginx(tmp / "site", tmp, ["127.0.0.1"]) as port:
        yield Site("synthetic", f"http://127.0.0.1:{port}/", 1, pages, True)


@contextmanager
def debian_python_docs(tmp: Path) -> Iterator[Site]:
    if not (DOCS / "index.html").exists():
        raise SystemExit(f"no {DOCS}/index.html: apt-get install -y python3.11-doc")
    with nginx(DOCS, tmp, ["127.0.0.1"]) as port:
        yield Site("debian-python-docs", f"http://127.0.0.1:{port}/", 1, None, False)


def broad_addresses(hosts: int) -> list[str]:
    return [f"127.0.{1 + i // PER_OCTET}.{1 + i % PER_OCTET}" for i in range(hosts)]


@contextmanager
def broad(tmp: Path, hosts: int, pages: int) -> Iterator[Site]:
    root, addresses = tmp / "broad", broad_addresses(hosts)
    write_site(str(root / "_site"), pages, FANOUT, SIZE, html="realistic")
    root.chmod(0o755)
    (root / "_site").chmod(0o755)
    for address in addresses:
        (root / address).symlink_to("_site")
    with nginx(root, tmp, addresses, by_address=True) as port:
        seeds = tmp / "seeds.txt"
        seeds.write_text("".join(f"http://{address}:{port}/\n" for address in addresses))
        yield Site("broad", str(seeds), hosts, hosts * pages, True)
