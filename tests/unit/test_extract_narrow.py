"""crawler.extract.html's narrow parse (HTMLBuilder) gives the same fields as a full BeautifulSoup tree.

The reference parses with bs4's own "lxml" builder, keeps every tag and whitespace string, and walks
the whole tree for the tags; both then go through the same `fill`. Pages: the realistic test site,
and random tag soup (nesting, templates, noscript, svg titles, images in links, comments, whitespace).
"""

from __future__ import annotations

import random
import warnings
from collections.abc import Iterator

import pytest
from bs4 import BeautifulSoup, CData, NavigableString, Tag, XMLParsedAsHTMLWarning

from crawler.extract.html import (
    _BREAKS,
    _HIDDEN,
    _STRING_CONTAINERS,
    _WANTED,
    Anchor,
    NoscriptString,
    fill,
    parse,
    read,
)
from crawler.records import Page
from crawler.testsite import render, render_realistic

URL = "https://h.example/p/q.html"
TAGS = [
    "div", "h1 class=x", "ul", "li", "br", "head", "body", "html", "section", "p", "pre", "textarea", "span",
    "em", "b", "table", "td", "ruby", "rt>r</rt", "rp>(</rp", "template", "noscript", "svg", "title", "script", "style",
    "map", "!-- c --", "a href='/x{n}'", "a href=' ../y/{n}#f '", "area href='/z{n}'", "img alt='i{n}'",
    "base href='/b/{n}/'", "meta name='description' content=' d {n} '", "meta property='og:description' content='og {n}'", "a title='t{n}' href='/t'", "a aria-label='l' href='{n}'", "svg><title>T{n}</title",
    "a href='/q{n}'><span><img alt='s{n}'", "noscript><a href='/n{n}'>n", "a href='/dup'",
]
TEXT = ["", " ", "\n", "  \n\t", "\xa0", " x ", "word", "&nbsp;", "&amp; ", "\u3000", "a\nb", "<!-- -->"]


def reference(text: str) -> Page:
    """The fields from a full bs4 tree: every tag built, every string kept, one walk for the tags."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", XMLParsedAsHTMLWarning)
        soup = BeautifulSoup(text, "lxml", multi_valued_attributes=None, string_containers=_STRING_CONTAINERS)
    tags: dict[str, list[Tag]] = {}
    anchors: list[Anchor] = []
    for element in soup.descendants:
        if isinstance(element, Tag) and element.name in _WANTED:
            tags.setdefault(element.name, []).append(element)
        elif isinstance(element, Tag) and element.name in ("a", "area") and not element.find_parent("template"):
            anchors.append(anchor_of(element))
    page = Page()
    fill(page, URL, tags, visible_text(soup), anchors)
    return page


def anchor_of(tag: Tag) -> Anchor:
    """An <a> or <area> of the full tree, read as HTMLBuilder reads one while it parses."""
    img = tag.find("img", alt=True) if tag.name == "a" else None
    return Anchor(dict(tag.attrs), list(flow_text(tag)), img.get("alt") if img else None)  # type: ignore[arg-type]


def flow_text(tag: Tag) -> Iterator[str]:
    """An element's text as a browser lays it out: its strings (those of <noscript> too: a crawler has
    no scripts), and a space at each edge of a tag that breaks the flow."""
    for child in tag.children:
        if isinstance(child, Tag):
            if child.name in _HIDDEN - {"noscript"}:
                continue
            edge = child.name in _BREAKS
            if edge:
                yield " "
            yield from flow_text(child)
            if edge:
                yield " "
        elif type(child) in (NavigableString, CData, NoscriptString):
            yield str(child)


def visible_text(tag: Tag) -> str:
    """The text as a browser lays it out, from the full tree: strings outside <head> and not under a
    hidden tag (wherever the parser put them: a browser shows what follows </body> too), and a space
    at each edge of a tag that breaks the flow."""
    out: list[str] = []

    def walk(node: Tag) -> None:
        for child in node.children:
            if isinstance(child, Tag):
                if child.name in _HIDDEN or child.name == "head":
                    continue
                edge = [" "] if child.name in _BREAKS else []
                out.extend(edge)
                walk(child)
                out.extend(edge)
            elif type(child) is NavigableString:
                out.append(str(child))

    walk(tag)
    return "".join(out)


def narrow(text: str) -> Page:
    page = Page()
    fill(page, URL, *read(parse(text)))
    return page


def soup_of(rnd: random.Random) -> str:
    out: list[str] = []
    stack: list[str] = []
    for _ in range(rnd.randint(5, 120)):
        roll = rnd.random()
        if roll < 0.4:
            tag = rnd.choice(TAGS).format(n=rnd.randint(0, 9))
            out.append(f"<{tag}>")
            name = tag.split()[0].split(">")[0]
            if not name.startswith("!") and name not in ("img", "base", "meta", "area", "br"):
                stack.append(name)
        elif roll < 0.6 and stack:
            out.append(f"</{stack.pop()}>")
        else:
            out.append(rnd.choice(TEXT))
    return "".join(out)


@pytest.mark.parametrize("i", [0, 1, 7, 40, 499])
def test_realistic_pages(i: int) -> None:
    for html in (render_realistic(i, 500, 40, 30_000), render(i, 500, 10, 2000, ("http://x.org/a",))):
        assert narrow(html.decode()) == reference(html.decode())


@pytest.mark.parametrize("seed", range(4))
def test_random_tag_soup(seed: int) -> None:
    rnd = random.Random(seed)
    for _ in range(300):
        text = soup_of(rnd)
        assert narrow(text) == reference(text), text
