"""Sitemaps (sitemaps.org protocol 0.9): `parse(body, max_bytes) -> Sitemap`, pure, never fetches.

Reads a <urlset> (page URLs with their <lastmod>), a <sitemapindex> (more sitemaps), or a text sitemap
(one URL a line), gzip-compressed or not. XML is parsed by lxml with entities left unresolved, no DTD
and no network (no XXE, no billion laughs) and in recover mode, so malformed XML yields what can be
read plus an `error`. A gzip body is inflated in bounded steps and refused past `max_bytes`, like any
body (a bomb costs at most max_bytes). `extract` wraps it in a Page for the extraction pool.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from urllib.parse import urljoin

from lxml import etree

from crawler.records import Link, Page
from crawler.urls import InvalidURL, normalize

GZIP_MAGIC = b"\x1f\x8b"
MAX_ENTRIES = 50_000  # the protocol's limit per file; more are ignored
ROOTS = {"urlset": "sitemap", "sitemapindex": "sitemap index"}


@dataclass
class Sitemap:
    kind: str = "sitemap"  # "sitemap" (page URLs) or "sitemap index" (sitemap URLs)
    entries: list[tuple[str, str | None]] = field(default_factory=list)  # (loc, lastmod)
    error: str | None = None


def gunzip(body: bytes, max_bytes: int) -> bytes:
    """The inflated body; ValueError past max_bytes or when it is no gzip."""
    inflate = zlib.decompressobj(wbits=31)
    out = inflate.decompress(body, max_bytes + 1)
    if len(out) > max_bytes:
        raise ValueError(f"too large: more than {max_bytes} bytes inflated")
    return out


def root_of(body: bytes) -> str | None:
    """"urlset" or "sitemapindex" when the body's first element is one (sniffed, not parsed)."""
    head = body[:2048].lstrip()
    for name in ROOTS:
        if head.startswith(b"<") and (b"<" + name.encode()) in head:
            return name
    return None


def parse(body: bytes, max_bytes: int) -> Sitemap:
    """The sitemap in `body` (see the module docstring); never raises."""
    if body.startswith(GZIP_MAGIC):
        try:
            body = gunzip(body, max_bytes)
        except (ValueError, zlib.error) as exc:
            return Sitemap(error=f"sitemap error: {exc}")
    if root_of(body) is None and not body.lstrip().startswith(b"<"):
        return text_sitemap(body)
    return xml_sitemap(body)


def text_sitemap(body: bytes) -> Sitemap:
    lines = body.decode("utf-8", "replace").splitlines()
    found: list[tuple[str, str | None]] = [(line.strip(), None) for line in lines if line.strip()]
    return Sitemap(entries=found[:MAX_ENTRIES])


def xml_sitemap(body: bytes) -> Sitemap:
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, recover=True,
                             huge_tree=False)
    try:
        root = etree.fromstring(body, parser)
    except etree.XMLSyntaxError as exc:
        return Sitemap(error=f"sitemap error: {exc}")
    if root is None or etree.QName(root).localname not in ROOTS:
        return Sitemap(error="sitemap error: no <urlset> or <sitemapindex>")
    sitemap = Sitemap(kind=ROOTS[etree.QName(root).localname], entries=entries(root))
    if parser.error_log.filter_from_errors():
        sitemap.error = f"sitemap error: {parser.error_log.filter_from_errors()[0].message}"[:300]
    return sitemap


def entries(root: etree._Element) -> list[tuple[str, str | None]]:
    found: list[tuple[str, str | None]] = []
    for item in root:
        if not isinstance(item.tag, str):
            continue  # a comment or a processing instruction
        fields = {etree.QName(child).localname: (child.text or "").strip() for child in item
                  if isinstance(child.tag, str)}
        if fields.get("loc"):
            found.append((fields["loc"], fields.get("lastmod") or None))
    return found[:MAX_ENTRIES]


def extract(url: str, body: bytes, max_bytes: int) -> Page:
    """A Page of kind "sitemap" or "sitemap index" whose links are the sitemap's absolute URLs."""
    sitemap = parse(body, max_bytes)
    page = Page(kind=sitemap.kind, error=sitemap.error)
    for loc, lastmod in sitemap.entries:
        try:
            page.links.append(Link(normalize(urljoin(url, loc)), "", lastmod))
        except InvalidURL:
            continue
    return page
