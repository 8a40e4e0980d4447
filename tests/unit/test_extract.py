"""crawler.extract.html: HTML bytes -> Page, on real-world-shaped markup written inline. No network."""

from __future__ import annotations

import dataclasses
import logging
import pickle
import random
from collections.abc import Iterator
from pathlib import Path

import pytest

import crawler.extract.html
from crawler.extract.html import extract
from crawler.records import Link, Page

URL = "https://example.com/blog/post.html"
UTF8 = "text/html; charset=utf-8"

ARTICLE = """<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>
     A Day   at the
     Seaside | Example Blog
  </title>
  <meta name="Description" content="  How we spent
     a day by the sea.  ">
  <meta property="og:description" content="Open Graph text">
  <link rel="stylesheet" href="/site.css">
  <link rel="alternate" href="/feed.xml">
  <script>var tracker = "<a href='/from-head-script'>x</a>";</script>
  <style>body { font-family: serif; } .hidden { display: none }</style>
</head>
<body>
  <header><a href="/" class="logo"><img src="/logo.png" alt="Example Blog"></a>
    <nav><ul><li><a href="/about">About</a></li><li><a href="/archive/">Archive</a></li></ul></nav>
  </header>
  <!-- a comment with <a href="/from-comment">a link</a> and secret words -->
  <article>
    <h1>A day at the seaside</h1>
    <p>We took the   early train&nbsp;to the <a href="../places/sea.html#beach">coast</a>.
       Fish &amp; chips<br>followed.</p>
    <script type="application/ld+json">{"url": "https://example.com/from-json-ld"}</script>
    <noscript><p>Please enable JavaScript.</p><a href="/no-js">no-js version</a></noscript>
    <template><p>inert template text</p><a href="/from-template">t</a></template>
    <p>See also the <a href="https://other.example/Path?q=1#frag">other site</a>.</p>
  </article>
  <footer><p>© 2024 Example</p></footer>
  <script>document.write('<a href="/from-body-script">dw</a>');</script>
</body>
</html>"""

XHTML = (
    '<?xml version="1.0" encoding="utf-8"?>\n<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Strict//EN" '
    '"http://www.w3.org/TR/xhtml1/DTD/xhtml1-strict.dtd">\n<html xmlns="http://www.w3.org/1999/xhtml">'
    '<head><title>X</title></head><body><p>xhtml</p><a href="/x">X</a></body></html>'
)

RSS = (
    '<?xml version="1.0" encoding="utf-8"?>\n<rss version="2.0"><channel><title>Feed</title>'
    "<link>https://example.com/</link><item><title>Post one</title><description>About one</description>"
    "</item></channel></rss>"
)


@pytest.fixture(autouse=True)
def no_swallowed_failure(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """extract() never raises, so make every test fail if it had to swallow an exception."""
    yield
    assert not [r for r in caplog.records if r.name == "crawler.extract.html" and r.levelno >= logging.ERROR]


def run(html: str, url: str = URL, content_type: str | None = UTF8) -> Page:
    return extract(url, html.encode("utf-8"), content_type)


def urls(page: Page) -> list[str]:
    return [link.url for link in page.links]


def test_article_title_description_and_encoding() -> None:
    page = run(ARTICLE)
    assert page.title == "A Day at the Seaside | Example Blog"
    assert page.description == "How we spent a day by the sea."
    assert page.encoding == "utf-8"


def test_article_text_is_the_visible_body_text() -> None:
    assert run(ARTICLE).text == (
        "About Archive A day at the seaside We took the early train to the coast. Fish & chips followed. "
        "See also the other site. © 2024 Example"
    )


@pytest.mark.parametrize(
    "hidden",
    ["font-family", "tracker", "secret words", "Please enable", "inert template", "dw", "ld+json", "Seaside"],
)
def test_text_leaves_out_scripts_styles_comments_noscript_template_and_head(hidden: str) -> None:
    assert hidden not in run(ARTICLE).text


def test_article_links() -> None:
    assert run(ARTICLE).links == [
        Link("https://example.com/", "Example Blog"),  # image link: the img alt is the anchor
        Link("https://example.com/about", "About"),
        Link("https://example.com/archive/", "Archive"),
        Link("https://example.com/places/sea.html", "coast"),  # relative, fragment dropped
        Link("https://example.com/no-js", "no-js version"),  # a crawler is a client without scripts
        Link("https://other.example/Path?q=1", "other site"),
    ]


def test_links_in_comments_scripts_and_templates_are_never_followed() -> None:
    found = " ".join(urls(run(ARTICLE)))
    for marker in ("from-comment", "from-head-script", "from-body-script", "from-json-ld", "from-template"):
        assert marker not in found


def test_description_falls_back_to_open_graph() -> None:
    head = '<meta name="description" content="  "><meta property="og:description" content="OG text">'
    assert run(f"<html><head>{head}</head><body>x</body></html>").description == "OG text"


@pytest.mark.parametrize(
    "head",
    ["", "<title></title>", "<title>   \n  </title>", '<meta name="keywords" content="a, b">'],
)
def test_missing_or_blank_title_and_description_are_none(head: str) -> None:
    page = run(f"<html><head>{head}</head><body><p>body</p></body></html>")
    assert (page.title, page.description, page.text) == (None, None, "body")


def test_svg_title_is_neither_page_title_nor_text() -> None:
    html = '<body><svg><title>search-icon</title><path d="M0"/></svg><p>Find</p></body>'
    page = run(html)
    assert (page.title, page.text) == (None, "Find")


@pytest.mark.parametrize(
    "title",
    ["Ünïcödé — 日本語のページ 🙂", "Привет, мир", "مرحبا بالعالم", "a < b & c > d", "‘quotes’ … “done”"],
)
def test_non_ascii_titles_are_stored_exactly(title: str) -> None:
    assert run(f"<title>{title.replace('&', '&amp;').replace('<', '&lt;')}</title>").title == title


def test_title_with_entities_and_legacy_encoding() -> None:
    html = '<html><head><meta charset="windows-1251"><title>Новости &amp; погода &#x1F642; &eacute;</title>'
    page = extract(URL, html.encode("cp1251"), "text/html")
    assert (page.title, page.encoding) == ("Новости & погода 🙂 é", "cp1251")


def test_text_collapses_whitespace_and_separates_minified_blocks() -> None:
    html = "<body><ul><li>Home</li><li>News</li></ul><p>one\n\t two&nbsp;&nbsp;three</p><div>a<br>b</div>"
    assert run(html).text == "Home News one two three a b"


def test_base_href_is_resolved_against_the_page_and_used_for_links() -> None:
    html = '<head><base href="../docs/v2/"><base href="/ignored/"></head><a href="intro.html">Intro</a>'
    assert urls(run(html)) == ["https://example.com/docs/v2/intro.html"]


@pytest.mark.parametrize("base", ['<base target="_blank">', '<base href="javascript:void(0)">'])
def test_base_without_usable_href_falls_back_to_page_url(base: str) -> None:
    assert urls(run(f'<head>{base}</head><a href="next.html">n</a>')) == ["https://example.com/blog/next.html"]


@pytest.mark.parametrize(
    ("href", "expected"),
    [
        ("next.html", "https://example.com/blog/next.html"),
        ("../index.html", "https://example.com/index.html"),
        ("/a/./b/../c", "https://example.com/a/c"),
        ("?page=2", "https://example.com/blog/post.html?page=2"),
        ("//cdn.example.org/x", "https://cdn.example.org/x"),
        ("HTTP://Example.COM:80/Caps", "http://example.com/Caps"),
        ("/a#section", "https://example.com/a"),
        ("#top", "https://example.com/blog/post.html"),
        ("  http://x.example/  ", "http://x.example/"),
        ("\n\t /padded.html \n", "https://example.com/padded.html"),
        ("/caf%C3%A9?q=a b", "https://example.com/caf%C3%A9?q=a%20b"),
    ],
)
def test_link_resolution(href: str, expected: str) -> None:
    assert urls(run(f'<a href="{href}">x</a>')) == [expected]


@pytest.mark.parametrize(
    "href",
    [
        "javascript:void(0)",
        " JavaScript:alert(1)",
        "mailto:someone@example.com",
        "tel:+15551234567",
        "data:text/html,<p>x</p>",
        "ftp://files.example.com/a",
        "http://",
        "/" + "a" * 9000,  # hrefs over 8 KB are junk
    ],
)
def test_uncrawlable_links_are_dropped(href: str) -> None:
    assert run(f'<a href="{href}">x</a><a>no href</a>').links == []


def test_one_link_per_url_first_non_empty_anchor_wins() -> None:
    html = (
        '<a href="/a"><img src="x.png"></a><a href="/b">B</a><a href="/a#again">First text</a>'
        '<a href="/a">Second text</a>'
    )
    assert run(html).links == [Link("https://example.com/a", "First text"), Link("https://example.com/b", "B")]


@pytest.mark.parametrize(
    ("html", "anchor"),
    [
        ('<a href="/x">  Read\n   <b>more</b>  </a>', "Read more"),
        ('<a href="/x"><img alt="  Company   logo "></a>', "Company logo"),
        ('<a href="/x" aria-label="Close dialog"><svg><title>icon</title></svg></a>', "Close dialog"),
        ('<a href="/x" title="Next page"></a>', "Next page"),
        ('<map name="m"><area href="/x" alt="Europe" shape="rect" coords="0,0,1,1"></map>', "Europe"),
        ('<a href="/x"><img src="a.png"></a>', ""),
    ],
)
def test_anchor_text_and_fallbacks(html: str, anchor: str) -> None:
    assert run(html).links == [Link("https://example.com/x", anchor)]


def test_unclosed_tags() -> None:
    html = "<html><head><title>Broken</title><body><p>one<p>two <a href=/u>unclosed link<div>tail <b>bold"
    page = run(html)
    assert (page.title, page.text) == ("Broken", "one two unclosed link tail bold")
    assert urls(page) == ["https://example.com/u"]


def test_deep_nesting() -> None:
    html = "<div>" * 5000 + '<a href="/deep">deep</a>' + "</div>" * 5000
    assert run(html).links == [Link("https://example.com/deep", "deep")]


def test_binary_garbage_labelled_html() -> None:
    garbage = random.Random(7).randbytes(100_000)
    page = extract(URL, garbage, "text/html")
    assert isinstance(page.text, str) and page.encoding


def test_nul_and_control_characters() -> None:
    page = extract(URL, b"<title>a\x00b</title><p>x\x00y\x01</p><a href='/n\x00'>n</a>", UTF8)
    assert page.title == "a\ufffdb"
    assert "\x00" not in page.text


def test_empty_body() -> None:
    assert extract(URL, b"", None) == Page(encoding="utf-8")


def test_huge_attribute_values_do_not_break_the_page() -> None:
    html = f'<p title="{"t" * 3_000_000}">text</p><a href="/{"h" * 3_000_000}">big</a><a href="/ok">ok</a>'
    page = run(html)
    assert urls(page) == ["https://example.com/ok"]
    assert page.text == "text bigok"  # (two links, no space between them: as a browser shows them)


@pytest.mark.parametrize(
    ("body", "text"),
    [
        ("http://example.com/", "http://example.com/"),  # bs4 would warn: looks like a URL
        ("index.html", "index.html"),  # bs4 would warn: looks like a filename
        (RSS, "https://example.com/About one"),  # bs4 would warn: XML parsed as HTML
        (XHTML, "xhtml X"),
    ],
    ids=["url", "filename", "rss", "xhtml"],
)
def test_odd_bodies_give_no_warning(body: str, text: str) -> None:
    assert run(body).text == text  # filterwarnings=error: a warning escaping would fail the test


def test_xhtml_served_as_html_keeps_links() -> None:
    assert run(XHTML).links == [Link("https://example.com/x", "X")]


def test_a_parser_failure_returns_what_was_gathered(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(text: str) -> None:
        raise RuntimeError("parser bug")

    monkeypatch.setattr(crawler.extract.html, "parse", broken)
    page = extract(URL, b"<title>t</title>", UTF8)
    assert page == Page(encoding="utf-8")
    assert "parser bug" in caplog.text
    caplog.clear()  # the autouse check: this failure was expected


def test_extract_is_a_picklable_top_level_function() -> None:
    assert pickle.loads(pickle.dumps(extract)) is extract


def test_page_pickles() -> None:
    page = run(ARTICLE)
    assert pickle.loads(pickle.dumps(page)) == page


SPHINX_SIGNATURE = (
    '<dl class="py function"><dt class="sig sig-object py" id="os.path.join">'
    '<span class="sig-prename descclassname"><span class="pre">os.path.</span></span>'
    '<span class="sig-name descname"><span class="pre">join</span></span><span class="sig-paren">(</span>'
    '<em class="sig-param"><span class="n"><span class="pre">path</span></span></em>, '
    '<em class="sig-param"><span class="o"><span class="pre">*</span></span><span class="n">'
    '<span class="pre">paths</span></span></em><span class="sig-paren">)</span>'
    '<a class="headerlink" href="#os.path.join" title="Link to this definition">¶</a></dt>'
    "<dd><p>Join one or more path segments intelligently.</p></dd></dl>"
)
PYGMENTS = (
    '<div class="highlight-python3 notranslate"><div class="highlight"><pre><span></span>'
    '<span class="gp">&gt;&gt;&gt; </span><span class="kn">import</span> <span class="nn">os</span>\n'
    '<span class="gp">&gt;&gt;&gt; </span><span class="n">os</span><span class="o">.</span>'
    '<span class="n">path</span><span class="o">.</span><span class="n">join</span><span class="p">(</span>'
    '<span class="s2">&quot;a&quot;</span><span class="p">)</span>\n</pre></div></div>'
)
DOCBOOK = (  # PostgreSQL's manual (DocBook XSL)
    '<div class="sect1"><h2 class="title">9.4. String Functions</h2><p>The function <code class="function">'
    'concat</code>(<em class="replaceable"><code>val1</code></em>, ...) returns <code class="literal">'
    "abcde</code>.</p><table><tr><td>a</td><td>b</td></tr></table><ul><li>one</li><li>two</li></ul></div>"
)


@pytest.mark.parametrize(
    ("html", "text"),
    [
        (SPHINX_SIGNATURE, "os.path.join(path, *paths)¶ Join one or more path segments intelligently."),
        (PYGMENTS, '>>> import os >>> os.path.join("a")'),
        (DOCBOOK, "9.4. String Functions The function concat(val1, ...) returns abcde. a b one two"),
        ("<p>Found a <a href='/bug'>bug</a>?</p>", "Found a bug?"),
        ("<p><b>bold</b>face, <i>it</i><em>alic</em></p>", "boldface, italic"),
        ("<div>one</div><div>two</div>three<br>four<hr>five<h1>six</h1>", "one two three four five six"),
        ("<p>a<span> </span>b</p><p>c</p>", "a b c"),
    ],
    ids=["sphinx", "pygments", "docbook", "inline-link", "inline-markup", "blocks", "spaces-kept"],
)
def test_text_has_spaces_only_where_a_browser_breaks_the_flow(html: str, text: str) -> None:
    assert run(html).text == text


def test_an_anchor_reads_as_the_browser_shows_it() -> None:
    page = run("<a href='/x'><span>os</span><span>.</span>path</a><a href='/y'><div>a</div><div>b</div></a>")
    assert [link.anchor for link in page.links] == ["os.path", "a b"]


def test_text_of_a_real_sphinx_page() -> None:
    """Python 3.11's library/os.path.html from Debian's python3.11-doc (Sphinx, Pygments), as shipped."""
    body = (Path(__file__).parent.parent / "fixtures" / "python-3.11-os.path.html").read_bytes()
    text = extract("https://docs.python.org/3.11/library/os.path.html", body, "text/html").text
    assert "os.path.join(path, *paths)¶ Join one or more path segments intelligently." in text
    assert "os.path.splitext(path)¶" in text
    assert ">>> splitext('bar') ('bar', '')" in text  # a Pygments session
    assert " . " not in text and "( " not in text


def test_an_empty_href_is_the_page_itself_and_a_missing_one_no_link() -> None:
    page = run('<a href="">here</a><a name="top">anchor</a><a href="#top">top</a>')
    assert page.links == [Link(URL, "here")]


@pytest.mark.parametrize("content", ["0; url=/next", "5;URL='/next'", ' 0 , url = "/next" ', "0;/next",
                                     "3.5; Url=/next"])
def test_a_meta_refresh_is_a_link(content: str) -> None:
    quoted = f"'{content}'" if '"' in content else f'"{content}"'
    page = run(f'<meta http-equiv="REFRESH" content={quoted}><a href="/other">o</a>')
    assert [link.url for link in page.links] == ["https://example.com/other", "https://example.com/next"]


def test_a_meta_refresh_without_a_url_is_no_link() -> None:
    assert run('<meta http-equiv="refresh" content="30">').links == []


def test_canonical_and_the_robots_meta() -> None:
    page = run('<link rel="Canonical" href="/blog/post"><meta name="ROBOTS" content="noindex, follow">'
               '<a href="/a" rel="nofollow">a</a><a href="/b">b</a><a href="/c" rel="nofollow">c</a><a href="/c">c</a>')
    assert page.canonical == "https://example.com/blog/post" and page.noindex
    assert [(link.url.rsplit("/", 1)[1], link.nofollow) for link in page.links] == [
        ("a", True), ("b", False), ("c", False)]  # (c: one link to it may be followed)


@pytest.mark.parametrize("meta", ['name="robots" content="nofollow"', 'name="robots" content="NONE"',
                                  'name="crawler" content="noindex,nofollow"'])
def test_a_robots_meta_nofollow_marks_every_link(meta: str) -> None:
    page = run(f'<meta {meta}><meta http-equiv="refresh" content="0;url=/r"><a href="/a">a</a>')
    assert [link.nofollow for link in page.links] == [True, True]


def test_another_crawlers_meta_is_not_ours() -> None:
    page = run('<meta name="googlebot" content="noindex, nofollow"><a href="/a">a</a>')
    assert not page.noindex and page.links[0].nofollow is False


def test_a_link_crosses_processes_with_every_field() -> None:
    """Link pickles as its fields (records.Link.__reduce__): a field added later must cross too."""
    link = Link(url="http://a.test/x", anchor="X", lastmod="2024-01-02", nofollow=True)
    assert all(getattr(link, f.name) != f.default for f in dataclasses.fields(Link))  # none left at its default
    assert pickle.loads(pickle.dumps(link)) == link
