"""Extract: owns HTML -> Page (title, description, visible text, links). The only BeautifulSoup import.

`extract` runs in extraction processes (a multiprocessing Pool): it is top-level, takes and returns plain
picklable values, and never raises. Bytes are decoded by crawler.extract.charset (WHATWG order) and the str is
parsed once by BeautifulSoup with a lean subclass of its "lxml" tree builder (libxml2), HTMLBuilder,
which also collects the tags extraction reads while it builds the tree.

What a reader of the page would call its parts:
- title: the first <title> outside <svg>, whitespace-collapsed; None when missing or blank.
- description: <meta name="description" content> (name case-insensitive), else the Open Graph
  <meta property="og:description"> written for link previews; whitespace-collapsed; None when blank.
- text: the visible text of <body>: no <script>, <style>, <template>, <noscript>, comments, ruby
  annotations (<rt>, <rp>) or <title> tooltips of inline SVG. A space goes where a browser breaks the
  flow (block-level elements, <br>, table cells, list items: minified "<li>a</li><li>b</li>" gives
  "a b") and nowhere else, so "<span>os</span><span>.</span><span>path</span>" is "os.path" and
  "<b>bold</b>face" is "boldface"; whitespace runs, &nbsp; included, collapse to one space.
- links: every <a href> and <area href> in document order (href="" is the page itself), then where a
  <meta http-equiv="refresh"> leads, resolved by crawler.urls.resolve against
  the first <base href> (itself resolved against the page URL) or the page URL; those urls.resolve
  refuses (javascript:, mailto:, tel:, data:, invalid) are dropped, and so are links inside <template>
  (inert) and hrefs over 8 KB. Links inside <noscript> are kept: a crawler is a client without scripts.
  Text in comments or <script> never becomes a link: the parser does not make elements of it.
  One Link per URL; its anchor is the first non-empty one among the URL's links.
- nofollow (a link's flag): rel="nofollow", or every link of a page whose <meta name="robots"> (or
  name="crawler") says nofollow or none; such links are stored, not followed. The same meta's noindex
  (or none) sets the page's noindex flag; <link rel="canonical" href> is its canonical URL.
- anchor: the link's visible text, else its own alt (<area>), else the alt of an <img> inside, else
  aria-label, else title; whitespace-collapsed; "" when none.
"""

from __future__ import annotations

import logging
import re
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from bs4 import (
    BeautifulSoup,
    MarkupResemblesLocatorWarning,
    NavigableString,
    Tag,
    XMLParsedAsHTMLWarning,
)
from bs4.builder import HTMLTreeBuilder
from bs4.builder._lxml import LXMLTreeBuilder

from crawler.extract.charset import decode_html
from crawler.records import Link, Page
from crawler.urls import resolve

_log = logging.getLogger(__name__)

# "/" then path characters that urljoin and urls.normalize leave as they are (no ";", "%", "?", "#", "\\",
# "[", "]", spaces or non-ASCII); with no "/." in it either (dot segments), root + href is normalized.
_PLAIN_PATH = re.compile(r"/(?!/)[A-Za-z0-9\-._~!$&'()*+,=:@/]*")
_REFRESH = re.compile(r"\s*\d*(?:\.\d*)?\s*[;,]\s*(?:url\s*=\s*)?(.+)", re.IGNORECASE | re.DOTALL)
_MAX_HREF = 8192  # longer hrefs are junk (or an attack) and would bloat the frontier
_WANTED = frozenset({"title", "base", "meta", "link"})  # built, and collected by name
_ANCHORS = frozenset({"a", "area"})
ROBOTS_NAMES = frozenset({"robots", "crawler"})  # <meta name=...> a crawler obeys: all robots, and ours


class NoscriptString(NavigableString):
    """A string inside <noscript>: left out of the visible text."""


class TitleString(NavigableString):
    """A string inside <title>: the page title, or an SVG tooltip; never body text."""


# bs4 gives strings under these tags their own classes, and get_text() keeps only plain strings:
# that is what leaves script, style, template, rt/rp, noscript and title out of the text, for free.
_STRING_CONTAINERS = {**HTMLTreeBuilder.DEFAULT_STRING_CONTAINERS, "noscript": NoscriptString, "title": TitleString}
_KEPT = _WANTED | {"body", "svg"} | set(_STRING_CONTAINERS)  # the tags HTMLBuilder builds
_HIDDEN = frozenset(_STRING_CONTAINERS)  # strings inside these are not visible text
# Where a browser breaks the line (display: block, list-item, table-*; <br>): a space in the text.
_BREAKS = frozenset({
    "address", "article", "aside", "blockquote", "body", "br", "caption", "center", "dd", "details",
    "dialog", "dir", "div", "dl", "dt", "fieldset", "figcaption", "figure", "footer", "form", "frame",
    "frameset", "h1", "h2", "h3", "h4", "h5", "h6", "header", "hgroup", "hr", "html", "iframe", "legend",
    "li", "main", "menu", "nav", "noframes", "ol", "optgroup", "option", "p", "pre", "section", "summary",
    "table", "tbody", "td", "tfoot", "th", "thead", "tr", "ul", "video", "audio", "canvas", "object",
})
_BREAK, _HIDE, _ANCHOR, _IMAGE, _KEEP = "break", "hide", "anchor", "image", "keep"
# A tag's role, in one lookup per tag event; most tags (span, em, code...) have none and cost no more.
_ROLE = (dict.fromkeys(_KEPT, _KEEP) | dict.fromkeys(_BREAKS, _BREAK) | dict.fromkeys(_HIDDEN, _HIDE)
         | dict.fromkeys(_ANCHORS, _ANCHOR) | {"img": _IMAGE})


def extract(url: str, body: bytes, content_type: str | None) -> Page:
    """Extract a Page from an HTML body; never raises. `content_type` is the whole header value."""
    page = Page()
    try:
        text, page.encoding = decode_html(body, content_type)
        fill(page, url, *read(parse(text)))
    except Exception:  # noqa: BLE001 - hostile markup must not kill an extraction process
        _log.exception("extraction failed for %s", url)
    return page


@dataclass(slots=True)
class Anchor:
    """An <a> or <area> as HTMLBuilder reads it off the parse: its attributes, its text in pieces (as a
    browser lays it out: flow_text in tests/unit/test_extract_narrow.py reads the same from a full tree), and
    the alt of its first <img alt>."""

    attrs: dict[str, str]
    text: list[str] = field(default_factory=list)
    img_alt: str | None = None
    is_area: bool = False
    unread: int = 0  # the parse's depth in tags whose strings are not anchor text, where it opened


class HTMLBuilder(LXMLTreeBuilder):
    """bs4's lxml tree builder, building only what extraction reads by tag: a narrower parse, the same fields.

    The page's visible text (`text`) and its links (`anchors`: each <a> and <area> outside <template>,
    in document order, with their text and first <img alt>) are read off the parse as it streams: most
    of a page's tags (div, p, li, span, em, a...) only separate strings, and building each as a bs4 Tag
    to read its text back was most of extraction's time. A tag that breaks the flow is a space there.
    Built are the tags read by name (`_KEPT`): title, meta, base, link, body, svg (a title inside is
    no page title), and the tags whose strings are not text (script, style, template, noscript, rt...),
    which the streamed reading needs to know it is inside. The one string the tree keeps is <title>'s.
    Also: lxml's HTML parser reports no namespaces, so the XML builder's namespace bookkeeping is
    skipped. The built tags extraction reads are collected as they come (`tags`: by name, in order).
    """

    def __init__(self) -> None:
        super().__init__(multi_valued_attributes=None, string_containers=_STRING_CONTAINERS)
        self.tags: dict[str, list[Tag]] = {}
        self.text: list[str] = []  # the visible text of <body>, in pieces (see the module docstring)
        self.anchors: list[Anchor] = []
        self._in_body = False
        self._containers: list[str] = []  # the open tags whose strings are not text, innermost last
        self._unread = 0  # how many of them hide their strings from anchors too (all but <noscript>)
        self._open: list[Anchor] = []  # the anchors open at this point of the parse, innermost last

    def start(self, tag: str, attrib: dict[str, str], nsmap: dict[str, str] | None = None) -> None:  # type: ignore[override]
        kind = _ROLE.get(tag)  # (inline, not a method: this runs for every tag of every page)
        if kind is None:
            return
        if kind is _BREAK:
            if not self._containers:
                self.text.append(" ")
            if self._open:
                self._anchor_text(" ")
            self._in_body = self._in_body or tag == "body"
        elif kind is _HIDE:
            self._containers.append(tag)
            self._unread += tag != "noscript"
        elif kind is _ANCHOR:
            self._open_anchor(tag, attrib)
            return
        elif kind is _IMAGE:
            if self._open and "alt" in attrib:
                self._image(attrib["alt"])
            return
        if tag in _KEPT:
            attrs = dict(attrib) if attrib else {}  # no attributes: lxml's empty mapping copies slowly
            soup = self.soup
            assert soup is not None
            element = soup.handle_starttag(tag, None, None, attrs, namespaces=self.active_namespace_prefixes[-1])
            if tag in _WANTED and element is not None:
                self.tags.setdefault(tag, []).append(element)

    def end(self, tag: str) -> None:  # type: ignore[override]
        kind = _ROLE.get(tag)
        if kind is None or kind is _IMAGE:
            return
        if kind is _BREAK:
            if not self._containers:
                self.text.append(" ")
            if self._open:
                self._anchor_text(" ")
        elif kind is _HIDE:
            self._containers.pop()
            self._unread -= tag != "noscript"
        elif kind is _ANCHOR:
            if self._open:
                self._open.pop()
            return
        if tag in _KEPT:
            soup = self.soup
            assert soup is not None
            soup.endData()
            soup.handle_endtag(tag, None)

    def data(self, data: str) -> None:  # type: ignore[override]
        containers = self._containers
        if not containers:
            if self._in_body:
                self.text.append(data)
            if self._open:
                self._anchor_text(data)
        elif containers[-1] == "noscript":
            if self._open:
                self._anchor_text(data)
        elif containers[-1] == "title":  # the one string read from the tree (see the class docstring)
            self.soup.current_data.append(data)  # type: ignore[union-attr]  # what soup.handle_data does

    def comment(self, text: str) -> None:  # type: ignore[override]
        """Comments are read by no field: not built."""

    def _open_anchor(self, tag: str, attrib: dict[str, str]) -> None:
        """An <a> or <area> starts: read from here to its end (one in a <template> is inert: not kept)."""
        anchor = Anchor(dict(attrib), is_area=tag == "area", unread=self._unread)
        self._open.append(anchor)
        if "template" not in self._containers:
            self.anchors.append(anchor)

    def _image(self, alt: str) -> None:
        """An <img alt> in the anchors open: the first one is the alt of each <a> (not <area>) around it."""
        for anchor in self._open:
            if anchor.img_alt is None and not anchor.is_area:
                anchor.img_alt = alt

    def _anchor_text(self, piece: str) -> None:
        """A piece of text (a string outside hidden tags or in a <noscript>: we run no scripts; or the space
        of a tag that breaks the flow) for each anchor open, unless a tag hidden from anchor text opened
        within it."""
        for anchor in self._open:
            if anchor.unread == self._unread:
                anchor.text.append(piece)


def parse(text: str) -> BeautifulSoup:
    """Parse decoded HTML with the lxml tree builder, silencing bs4's warnings about odd input."""
    builder = HTMLBuilder()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MarkupResemblesLocatorWarning)  # a body like "http://x" or "a.html"
        warnings.simplefilter("ignore", XMLParsedAsHTMLWarning)  # an RSS feed or sitemap served as text/html
        return BeautifulSoup(text, builder=builder)


def read(soup: BeautifulSoup) -> tuple[dict[str, list[Tag]], str, list[Anchor]]:
    """What HTMLBuilder read while it built `soup` (see its docstring): tags by name, the visible text, the
    anchors."""
    builder = soup.builder
    return (builder.tags, "".join(builder.text), builder.anchors) if isinstance(builder, HTMLBuilder) else ({}, "", [])


def fill(page: Page, url: str, tags: dict[str, list[Tag]], text: str, anchors: list[Anchor]) -> None:
    """Set the page's fields from its tags by name, in document order, its text and its anchors."""
    page.title = _title(tags.get("title", []))
    page.description = _description(tags.get("meta", []))
    page.text = _collapse(text)
    base = _base_url(url, tags.get("base", []))
    page.links = _links(base, anchors)
    for target in _refreshes(base, tags.get("meta", [])):
        if all(link.url != target for link in page.links):
            page.links.append(Link(url=target, anchor=""))
    page.canonical = _canonical(base, tags.get("link", []))
    rules = _robots_meta(tags.get("meta", []))
    page.noindex = bool(rules & {"noindex", "none"})
    if rules & {"nofollow", "none"}:
        for link in page.links:
            link.nofollow = True


def _title(titles: list[Tag]) -> str | None:
    for tag in titles:
        if tag.find_parent("svg") is None:
            return _collapse(tag.get_text()) or None
    return None


def _description(metas: list[Tag]) -> str | None:
    found: dict[str, str] = {}
    for meta in metas:
        key = (_attr(meta, "name") or _attr(meta, "property")).strip().lower()
        if key in ("description", "og:description"):
            found.setdefault(key, _collapse(_attr(meta, "content")))
    return found.get("description") or found.get("og:description") or None


def _canonical(base: str, links: list[Tag]) -> str | None:
    for tag in links:
        if "canonical" in _attr(tag, "rel").lower().split() and (target := resolve(base, _attr(tag, "href"))):
            return target
    return None


def _robots_meta(metas: list[Tag]) -> set[str]:
    """The rules of <meta name="robots"> (and of one named for this crawler): noindex, nofollow, none..."""
    rules: set[str] = set()
    for meta in metas:
        if _attr(meta, "name").strip().lower() in ROBOTS_NAMES:
            rules.update(rule.strip() for rule in _attr(meta, "content").lower().split(","))
    return rules


def _refreshes(base: str, metas: list[Tag]) -> Iterator[str]:
    """Where <meta http-equiv="refresh" content="N; url=..."> leads (any case, any spacing, the URL quoted
    or not): an HTML-level redirect, followed like a link."""
    for meta in metas:
        if _attr(meta, "http-equiv").strip().lower() == "refresh":
            found = _REFRESH.match(_attr(meta, "content"))
            if found and (target := resolve(base, found.group(1).strip().strip("'\""))):
                yield target


def _base_url(url: str, bases: list[Tag]) -> str:
    """The first <base href>, resolved against the page URL; the page URL when none is usable."""
    for tag in bases:
        if tag.has_attr("href"):
            return resolve(url, _attr(tag, "href")) or url
    return url


def _links(base: str, anchors: list[Anchor]) -> list[Link]:
    links: dict[str, Link] = {}
    for tag, target in _targets(base, anchors):
        link = links.get(target)
        nofollow = "nofollow" in tag.attrs.get("rel", "").lower().split()
        if link is None:
            links[target] = Link(url=target, anchor=_anchor(tag), nofollow=nofollow)
        else:
            link.anchor = link.anchor or _anchor(tag)
            link.nofollow = link.nofollow and nofollow  # followed if any link to it may be
    return list(links.values())


def _targets(base: str, anchors: Iterable[Anchor]) -> Iterator[tuple[Anchor, str]]:
    """(anchor, absolute URL) for each anchor whose href resolves to something crawlable."""
    resolved: dict[str, str | None] = {}  # pages repeat hrefs (logo and "Home", a page's sections)
    root = _root(base)
    for tag in anchors:
        href = tag.attrs.get("href")  # ("": the page itself, as a browser takes it)
        if href is None or len(href) > _MAX_HREF:
            continue
        href = href.partition("#")[0]  # (a fragment never changes the target: one resolve per page linked)
        if href not in resolved:
            resolved[href] = _resolve(base, root, href)
        if (target := resolved[href]) is not None:
            yield tag, target


def _root(base: str) -> str:
    """"scheme://authority" of a normalized URL: what an absolute-path href is appended to."""
    slash = base.find("/", base.find("://") + 3)
    return base[:slash] if slash >= 0 else base


def _resolve(base: str, root: str, href: str) -> str | None:
    """urls.resolve, with a shortcut for the commonest href: an absolute path already in normal form."""
    if _PLAIN_PATH.fullmatch(href) and "/." not in href:
        return root + href
    return resolve(base, href)


def _anchor(tag: Anchor) -> str:
    """The anchor's text, else its own alt (<area>), else its first <img alt>, else aria-label, else title."""
    attrs = tag.attrs
    for value in ("".join(tag.text), attrs.get("alt"), tag.img_alt, attrs.get("aria-label"), attrs.get("title")):
        if value := _collapse(value or ""):
            return value
    return ""


def _attr(tag: Tag | None, name: str) -> str:
    """An attribute as a str ("" when absent); multi_valued_attributes=None keeps every value a str."""
    value = tag.get(name) if isinstance(tag, Tag) else None
    return value if isinstance(value, str) else ""


def _collapse(text: str) -> str:
    return " ".join(text.split())
