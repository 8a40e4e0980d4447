"""The sitemap parser (crawler.extract.sitemap): urlsets, indexes, text, gzip, hostile and broken XML."""

from __future__ import annotations

import gzip

import pytest

from crawler.extract.sitemap import Sitemap, extract, parse, root_of

NS = 'xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"'
URLSET = (f'<?xml version="1.0" encoding="UTF-8"?><urlset {NS}><url><loc> http://h/a </loc>'
          "<lastmod>2024-05-06</lastmod></url><!-- c --><url><loc>/b</loc></url><url><lastmod>x</lastmod></url>"
          "</urlset>").encode()
INDEX = f"<sitemapindex {NS}><sitemap><loc>http://h/s1.xml</loc></sitemap></sitemapindex>".encode()
LAUGHS = (b'<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">'
          b'<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;">]><urlset><url><loc>http://h/&c;</loc></url></urlset>')
XXE = b'<?xml version="1.0"?><!DOCTYPE u [<!ENTITY x SYSTEM "file:///etc/passwd">]><urlset><url><loc>&x;</loc></url></urlset>'


@pytest.mark.parametrize("body, expected", [
    (URLSET, Sitemap("sitemap", [("http://h/a", "2024-05-06"), ("/b", None)])),
    (gzip.compress(URLSET), Sitemap("sitemap", [("http://h/a", "2024-05-06"), ("/b", None)])),
    (INDEX, Sitemap("sitemap index", [("http://h/s1.xml", None)])),
    (b"http://h/a\r\n\n  http://h/b  \n", Sitemap("sitemap", [("http://h/a", None), ("http://h/b", None)])),
    (b"", Sitemap("sitemap", [])),
])
def test_parse(body: bytes, expected: Sitemap) -> None:
    assert parse(body, 1 << 20) == expected


def test_entities_are_never_expanded_nor_files_read() -> None:
    assert parse(LAUGHS, 1 << 20).entries in ([], [("http://h/", None)])
    assert all("root:" not in loc for loc, _ in parse(XXE, 1 << 20).entries)


def test_malformed_xml_yields_what_can_be_read_and_an_error() -> None:
    sitemap = parse(URLSET[: URLSET.index(b"<!--")], 1 << 20)
    assert sitemap.entries == [("http://h/a", "2024-05-06")] and (sitemap.error or "").startswith("sitemap error:")
    assert parse(b"<html><body>no</body></html>", 1 << 20).error == "sitemap error: no <urlset> or <sitemapindex>"


def test_gzip_is_capped_after_inflating() -> None:
    bomb = gzip.compress(b"\0" * 1_000_000)
    assert parse(bomb, 999_999).error == "sitemap error: too large: more than 999999 bytes inflated"
    assert parse(b"\x1f\x8bnot gzip", 100).error.startswith("sitemap error: ")  # type: ignore[union-attr]


def test_sniffing_and_extract() -> None:
    assert (root_of(URLSET), root_of(INDEX), root_of(b"<html>"), root_of(b"http://h/")) == (
        "urlset", "sitemapindex", None, None)
    page = extract("http://h/dir/sitemap.xml", URLSET, 1 << 20)
    assert page.kind == "sitemap" and [(link.url, link.lastmod) for link in page.links] == [
        ("http://h/a", "2024-05-06"), ("http://h/b", None)]
