"""The fields the peer contenders extract from an HTML page, as `crawl` defines them, in each peer's own way.

title; meta description (else og:description); the visible text of <body> (no script, style, template or
noscript), whitespace-collapsed; every distinct link of <a>/<area> (absolute against <base href> or the
page, http(s), fragment dropped) with its anchor text (else the alt of the link or its image, aria-label
or title). `parsel_fields` is parsel (lxml) XPath, what Scrapy and Crawlee's ParselCrawler hand a
callback; `soup_fields` is BeautifulSoup, what Crawlee's BeautifulSoupCrawler hands it. Both return
{"title", "description", "text", "links": [(url, anchor), ...]}.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urldefrag, urljoin

from bs4 import BeautifulSoup, Tag
from parsel import Selector

HIDDEN = ("script", "style", "template", "noscript")
TEXT_XPATH = f"//body//text()[not({' or '.join(f'ancestor::{tag}' for tag in HIDDEN)})]"
FALLBACK_XPATHS = ("@alt", ".//img/@alt", "@aria-label", "@title")
DESCRIPTIONS = ("description", "og:description")


def collapse(text: str | None) -> str:
    return " ".join((text or "").split())


def absolute(base: str, href: str) -> str | None:
    """The link's absolute URL without its fragment, if it is http(s)."""
    url = urldefrag(urljoin(base, href.strip()))[0]
    return url if url.startswith(("http://", "https://")) else None


# -- parsel (Scrapy, Crawlee's ParselCrawler) -------------------------------------------------


def parsel_fields(selector: Selector, url: str) -> dict[str, Any]:
    base = urljoin(url, selector.xpath("//base/@href").get() or "")
    return {
        "title": collapse(selector.xpath("//title/text()").get()) or None,
        "description": parsel_description(selector),
        "text": collapse(" ".join(selector.xpath(TEXT_XPATH).getall())),
        "links": list(parsel_links(selector, base).items()),
    }


def parsel_links(selector: Selector, base: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for a in selector.xpath("//a[@href] | //area[@href]"):
        url = absolute(base, a.attrib["href"])
        if url is not None and not found.get(url):
            found[url] = collapse(a.xpath("string()").get()) or parsel_fallback(a)  # first non-empty wins
    return found


def parsel_fallback(a: Selector) -> str:
    for xpath in FALLBACK_XPATHS:
        if value := collapse(a.xpath(xpath).get()):
            return value
    return ""


def parsel_description(selector: Selector) -> str | None:
    for name in DESCRIPTIONS:
        if value := collapse(selector.xpath(f'//meta[@name="{name}" or @property="{name}"]/@content').get()):
            return value
    return None


# -- BeautifulSoup (Crawlee's BeautifulSoupCrawler) -------------------------------------------


def soup_fields(soup: BeautifulSoup, url: str) -> dict[str, Any]:
    """The fields; the soup loses its hidden tags (read the links first: they may be inside them)."""
    base_tag = soup.find("base", href=True)
    base = urljoin(url, str(base_tag["href"])) if isinstance(base_tag, Tag) else url
    links = soup_links(soup, base)
    return {
        "title": (collapse(soup.title.get_text()) or None) if soup.title else None,
        "description": soup_description(soup),
        "text": soup_text(soup),
        "links": list(links.items()),
    }


def soup_links(soup: BeautifulSoup, base: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for a in soup.find_all(["a", "area"], href=True):
        url = absolute(base, str(a["href"]))
        if url is not None and not found.get(url):
            found[url] = collapse(a.get_text()) or soup_fallback(a)  # the first non-empty anchor wins
    return found


def soup_fallback(a: Tag) -> str:
    image = a.find("img", alt=True)
    for value in (a.get("alt"), image.get("alt") if isinstance(image, Tag) else None, a.get("aria-label"),
                  a.get("title")):
        if text := collapse(str(value) if value is not None else None):
            return text
    return ""


def soup_description(soup: BeautifulSoup) -> str | None:
    for name in DESCRIPTIONS:
        for attr in ("name", "property"):
            meta = soup.find("meta", attrs={attr: name})
            if isinstance(meta, Tag) and (value := collapse(str(meta.get("content") or ""))):
                return value
    return None


def soup_text(soup: BeautifulSoup) -> str:
    body = soup.body or soup
    for tag in body.find_all(HIDDEN):
        tag.decompose()
    return collapse(body.get_text(" "))
