"""crawler.urls and crawler.addresses: RFC 3986 vectors, normalization, scope, traps and private addresses."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from crawler.addresses import is_private_address, literal_address
from crawler.urls import (
    InvalidURL,
    Scope,
    endpoint_of,
    host_of,
    normalize,
    origin_of,
    resolve,
    trap_reason,
)

RFC_BASE = "http://a/b/c/d;p?q"

# RFC 3986 5.4.1, with the expected results normalized (fragment dropped, empty path -> "/").
RFC_NORMAL = [
    ("g:h", None),  # not http(s)
    ("g", "http://a/b/c/g"),
    ("./g", "http://a/b/c/g"),
    ("g/", "http://a/b/c/g/"),
    ("/g", "http://a/g"),
    ("//g", "http://g/"),
    ("?y", "http://a/b/c/d;p?y"),
    ("g?y", "http://a/b/c/g?y"),
    ("#s", "http://a/b/c/d;p?q"),
    ("g#s", "http://a/b/c/g"),
    ("g?y#s", "http://a/b/c/g?y"),
    (";x", "http://a/b/c/;x"),
    ("g;x", "http://a/b/c/g;x"),
    ("g;x?y#s", "http://a/b/c/g;x?y"),
    ("", "http://a/b/c/d;p?q"),
    (".", "http://a/b/c/"),
    ("./", "http://a/b/c/"),
    ("..", "http://a/b/"),
    ("../", "http://a/b/"),
    ("../g", "http://a/b/g"),
    ("../..", "http://a/"),
    ("../../", "http://a/"),
    ("../../g", "http://a/g"),
]

# RFC 3986 5.4.2.
RFC_ABNORMAL = [
    ("../../../g", "http://a/g"),
    ("../../../../g", "http://a/g"),
    ("/./g", "http://a/g"),
    ("/../g", "http://a/g"),
    ("g.", "http://a/b/c/g."),
    (".g", "http://a/b/c/.g"),
    ("g..", "http://a/b/c/g.."),
    ("..g", "http://a/b/c/..g"),
    ("./../g", "http://a/b/g"),
    ("./g/.", "http://a/b/c/g/"),
    ("g/./h", "http://a/b/c/g/h"),
    ("g/../h", "http://a/b/c/h"),
    ("g;x=1/./y", "http://a/b/c/g;x=1/y"),
    ("g;x=1/../y", "http://a/b/c/y"),
    ("g?y/./x", "http://a/b/c/g?y/./x"),
    ("g?y/../x", "http://a/b/c/g?y/../x"),
    ("g#s/./x", "http://a/b/c/g"),
    ("g#s/../x", "http://a/b/c/g"),
    ("http:g", "http://a/b/c/g"),  # the RFC's "backward compatible" reading, as browsers do
]


@pytest.mark.parametrize(("href", "expected"), RFC_NORMAL + RFC_ABNORMAL)
def test_resolve_rfc3986_examples(href: str, expected: str | None) -> None:
    assert resolve(RFC_BASE, href) == expected


NORMALIZED = [
    # RFC 3986 6.2.2.1: case of scheme and host, hex digits of escapes
    ("HTTP://www.EXAMPLE.com/", "http://www.example.com/"),
    ("http://example.com/%3a%7e%c3%Bc", "http://example.com/%3A~%C3%BC"),
    ("http://example.com/Path?Query=Upper", "http://example.com/Path?Query=Upper"),
    # 6.2.2.2: escapes of unreserved characters (ALPHA DIGIT - . _ ~) are decoded, in every component;
    # escapes of reserved characters and of "%" stay as they are (decoding them changes the resource)
    ("http://example.com/%7Euser/~other", "http://example.com/~user/~other"),
    ("http://example.com/%41%7a%30%2D%2e%5F%7e?%41=%62", "http://example.com/Az0-._~?A=b"),
    ("http://example.com/a%2Fb%3f%23%25%40?x=%2F%26%3d", "http://example.com/a%2Fb%3F%23%25%40?x=%2F%26%3D"),
    ("http://example.com/%C3%BC%20%00%7F", "http://example.com/%C3%BC%20%00%7F"),
    ("http://ex%41mple.%63om/", "http://example.com/"),
    # 6.2.2.3: dot segments, also when written as escapes (decoded first, then removed)
    ("http://example.com/a/%2e%2E/b/%2E/c", "http://example.com/b/c"),
    ("http://example.com/a/./b/../c", "http://example.com/a/c"),
    ("http://example.com/a/b/..", "http://example.com/a/"),
    ("http://example.com/..", "http://example.com/"),
    ("http://example.com/a//../b", "http://example.com/a/b"),
    ("http://example.com/.hidden/x.", "http://example.com/.hidden/x."),
    ("http://example.com/x?a=/../b", "http://example.com/x?a=/../b"),
    # 6.2.3: scheme-based (empty path, default and empty port)
    ("http://example.com", "http://example.com/"),
    ("http://example.com:/", "http://example.com/"),
    ("http://example.com:80/", "http://example.com/"),
    ("http://example.com:080/", "http://example.com/"),
    ("https://example.com:443/x", "https://example.com/x"),
    ("http://example.com:443/x", "http://example.com:443/x"),
    ("https://example.com:80/x", "https://example.com:80/x"),
    ("http://example.com:8080", "http://example.com:8080/"),
    # fragment and empty query dropped, query kept as given
    ("http://example.com/a#frag", "http://example.com/a"),
    ("http://example.com/a?#frag", "http://example.com/a"),
    ("http://example.com/a?b=2&a=1&b=1", "http://example.com/a?b=2&a=1&b=1"),
    ("http://example.com/a?q=a+b&r=%2B", "http://example.com/a?q=a+b&r=%2B"),
    # characters a URL cannot hold get percent-encoded (UTF-8); existing escapes are left alone
    ("http://example.com/a b?q=c d", "http://example.com/a%20b?q=c%20d"),
    ("http://example.com/ü?q=é", "http://example.com/%C3%BC?q=%C3%A9"),
    ('http://example.com/<x>"{y}|^`\\', "http://example.com/%3Cx%3E%22%7By%7D%7C%5E%60%5C"),
    ("http://example.com/a%20b/100%/%zz", "http://example.com/a%20b/100%/%zz"),
    ("http://example.com/!$&'()*+,;=:@[]", "http://example.com/!$&'()*+,;=:@[]"),
    # userinfo dropped (the same page with or without it; crawler.credentials keeps a seed's); host lowercased
    ("http://User:Pa%3as@Example.COM/", "http://example.com/"),
    ("http://a b:p@ss@example.com:8080/x", "http://example.com:8080/x"),
    ("http://@example.com/", "http://example.com/"),
    ("http://u@[::1]/", "http://[::1]/"),
    # IDNA (UTS #46, as browsers and requests do)
    ("http://BÜCHER.de/", "http://xn--bcher-kva.de/"),
    ("http://faß.de/", "http://xn--fa-hia.de/"),
    ("http://例え.テスト/", "http://xn--r8jz45g.xn--zckzah/"),
    # IP literals
    ("http://127.0.0.1:8000/x", "http://127.0.0.1:8000/x"),
    ("http://[0:0:0:0:0:0:0:1]:8080/", "http://[::1]:8080/"),
    ("http://[FE80::A]/", "http://[fe80::a]/"),
    # surrounding whitespace
    ("  http://example.com/a \n", "http://example.com/a"),
]


@pytest.mark.parametrize(("url", "expected"), NORMALIZED)
def test_normalize(url: str, expected: str) -> None:
    assert normalize(url) == expected


@pytest.mark.parametrize(("url", "expected"), NORMALIZED)
def test_normalize_is_idempotent(url: str, expected: str) -> None:
    assert normalize(expected) == expected


@pytest.mark.parametrize(
    "url",
    [
        "",
        "   ",
        "/relative/path",
        "example.com/x",
        "mailto:someone@example.com",
        "javascript:alert(1)",
        "ftp://example.com/file",
        "file:///etc/passwd",
        "http://",
        "http:///path",
        "http:example.com",
        "http://example.com:99999/",
        "http://example.com:-1/",
        "http://example.com:8o/",
        "http://example.com:²/",
        "http://example.com:80:80/",
        "http://[::1/",
        "http://[zz::1]/",
        "http://[::1]x/",
        "http://exa mple.com/",
        "http://exa<mple.com/",
        "http://a/\ud800",
        "http://ex%2Fample.com/",
        "http://ex%C3%BCmple.com/",
    ],
)
def test_normalize_rejects(url: str) -> None:
    with pytest.raises(InvalidURL):
        normalize(url)


# --- properties (Hypothesis): any string, and strings shaped like URLs --------------------------------

_UNRESERVED = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~"
_PIECE = st.one_of(
    st.text(alphabet=_UNRESERVED + ":/?#[]@!$&'()*+,;=%", max_size=6),
    st.sampled_from([".", "..", "/", "//", ";", "%2e", "%2E%2e", "%", "%%", "%zz", "%41", "%7e", "%2F",
                     "%25", "%C3%BC", "\\", " ", "\t", "\x00", "\x7f", "\u00fc", "\u00df", "\u3002", "\ud800",
                     "\u202e", "\U0001f600"]),
    st.characters(),
)
_HOSTS = st.one_of(
    st.sampled_from(["example.com", "EXAMPLE.com.", "xn--bcher-kva.de", "b\u00fccher.de", "127.0.0.1",
                     "[::1]", "\u4f8b\u3048.\u30c6\u30b9\u30c8", "[FE80::A%25eth0]", "[::ffff:1.2.3.4]",
                     "ex%41mple.com", "a_b~c", "", "[", "[::1", "a:b"]),
    st.text(alphabet=_UNRESERVED + "%.[]:", min_size=1, max_size=12),
)
_PIECES = st.builds("".join, st.lists(_PIECE, max_size=8))
URL_SHAPED = st.builds(
    "".join,
    st.tuples(
        st.sampled_from(["http://", "HTTP://", "https://", "hTTpS://", "ftp://", "http:", "http:///", "//"]),
        st.one_of(st.just(""), st.builds("{}@".format, st.text(alphabet=_UNRESERVED + ":%@ ", max_size=8))),
        _HOSTS,
        st.sampled_from(["", ":", ":80", ":443", ":0080", ":8080", ":65536", ":x"]),
        st.one_of(st.builds("/{}".format, _PIECES), _PIECES),
        st.one_of(st.just(""), st.builds("?{}".format, _PIECES)),
        st.one_of(st.just(""), st.builds("#{}".format, _PIECES)),
    ),
)
ANY_STRING = st.one_of(st.text(), URL_SHAPED)


@settings(max_examples=400, deadline=None)
@given(ANY_STRING)
@example("http://a/%2e%2e/")
@example("http://a/.//x")
@example("http://a b@example.com/")
@example("HTTP://0/;")
def test_normalize_raises_only_invalid_url_and_its_output_is_a_fixed_point(url: str) -> None:
    try:
        out = normalize(url)
    except InvalidURL:
        return
    assert normalize(out) == out
    assert resolve(out, out) == out
    parts = urlsplit(out)
    assert parts.scheme in ("http", "https") and parts.hostname and not parts.fragment
    assert "@" not in parts.netloc
    assert out.isascii() and not any(c.isspace() or ord(c) < 0x21 or ord(c) == 0x7F for c in out)


@st.composite
def _respelled(draw: st.DrawFn, url: str) -> str:
    """`url` with scheme and authority in uppercase and some unreserved characters of its path and query
    written as escapes (hex digits in either case)."""
    head, _, tail = url.partition("://")
    authority, slash, rest = tail.partition("/")
    spelled = [
        f"%{ord(c):02{draw(st.sampled_from('xX'))}}" if c in _UNRESERVED and draw(st.booleans()) else c
        for c in rest
    ]
    return f"{head.upper()}://{authority.upper()}{slash}{''.join(spelled)}"


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_urls_that_differ_only_by_case_and_unreserved_escapes_are_one_url(data: st.DataObject) -> None:
    url = data.draw(URL_SHAPED)
    try:
        out = normalize(url)
    except InvalidURL:
        return
    if "[" in urlsplit(out).netloc:
        return  # an IPv6 zone id is case-sensitive
    assert normalize(data.draw(_respelled(out))) == out


def test_invalid_url_is_a_value_error() -> None:
    assert issubclass(InvalidURL, ValueError)


BASE = "https://example.com/dir/page.html"


@pytest.mark.parametrize(
    ("href", "expected"),
    [
        ("javascript:void(0)", None),
        ("mailto:someone@example.com", None),
        ("tel:+15551234", None),
        ("data:text/html,hello", None),
        ("ftp://example.com/file", None),
        ("http://example.com:99999/", None),
        ("//[::1", None),
        ("#top", "https://example.com/dir/page.html"),
        ("", "https://example.com/dir/page.html"),
        ("  other.html \n", "https://example.com/dir/other.html"),
        ("/a\tb\nc\r", "https://example.com/abc"),
        ("\\root\\x?q=a\\b#f\\g", "https://example.com/root/x?q=a%5Cb"),
        ("//cdn.Example.org/x", "https://cdn.example.org/x"),
        ("HTTP://Other.org", "http://other.org/"),
        ("?page=2", "https://example.com/dir/page.html?page=2"),
        ("../up/", "https://example.com/up/"),
        ("x;", "https://example.com/dir/x;"),  # an empty ";" parameter is part of the path (urljoin drops it)
        ("https://other.org/;", "https://other.org/;"),
        ("https:x", "https://example.com/dir/x"),
        ("HTTPS://Other.org/%7e", "https://other.org/~"),
        ("./%2E%2E/%2e/x", "https://example.com/x"),
    ],
)
def test_resolve(href: str, expected: str | None) -> None:
    assert resolve(BASE, href) == expected


@pytest.mark.parametrize(
    ("url", "host", "origin"),
    [
        ("http://example.com/a", "example.com", "http://example.com"),
        ("https://example.com:8443/a?b#c", "example.com", "https://example.com:8443"),
        ("http://user:pw@example.com:81/", "example.com", "http://example.com:81"),
        ("http://example.com?q=@x", "example.com", "http://example.com"),
        ("http://[::1]:8080/x", "::1", "http://[::1]:8080"),
        ("http://[::1]/x", "::1", "http://[::1]"),
        ("http://127.0.0.1:8000/", "127.0.0.1", "http://127.0.0.1:8000"),
    ],
)
def test_host_and_origin(url: str, host: str, origin: str) -> None:
    assert host_of(url) == host
    assert origin_of(url) == origin


SEEDS = ["https://www.python.org/", "http://Example.COM:8080/start"]


@pytest.mark.parametrize(
    ("mode", "url", "allowed"),
    [
        ("host", "https://www.python.org/about", True),
        ("host", "http://www.python.org:8000/", True),  # scope is by host; the port does not matter
        ("host", "http://example.com/other", True),
        ("host", "https://docs.python.org/", False),
        ("host", "https://python.org/", False),
        ("host", "https://sub.example.com/", False),
        ("domain", "https://www.python.org/", True),
        ("domain", "https://python.org/", True),
        ("domain", "https://docs.python.org/3/", True),
        ("domain", "https://a.b.python.org/", True),
        ("domain", "https://sub.example.com/", True),
        ("domain", "https://evilpython.org/", False),
        ("domain", "https://python.org.evil.com/", False),
        ("domain", "https://org/", False),
        ("all", "https://anything.test/", True),
    ],
)
def test_scope_modes(mode: str, url: str, allowed: bool) -> None:
    assert Scope.build(SEEDS, mode).allows(url) is allowed


# --scope domain knows the Public Suffix List (the packaged snapshot of publicsuffixlist): a site is a
# seed host's registrable domain, so a seed on a shared host (github.io, co.uk) allows only its own part.
@pytest.mark.parametrize(
    ("seed", "url", "allowed"),
    [
        ("https://www.github.io/", "https://www.github.io/x", True),
        ("https://www.github.io/", "https://a.www.github.io/", True),
        ("https://www.github.io/", "https://github.io/", False),
        ("https://www.github.io/", "https://other.github.io/", False),
        ("https://alice.github.io/", "https://bob.github.io/", False),
        ("https://docs.python.org/3/", "https://www.python.org/", True),
        ("https://docs.python.org/3/", "https://python.org/", True),
        ("https://docs.python.org/3/", "https://a.b.python.org/", True),
        ("https://docs.python.org/3/", "https://python.org.evil.com/", False),
        ("https://docs.python.org/3/", "https://org/", False),
        ("https://www.bbc.co.uk/", "https://news.bbc.co.uk/", True),
        ("https://www.bbc.co.uk/", "https://other.co.uk/", False),
        ("https://a.b.example.test/", "https://c.example.test/", True),  # an unknown TLD is a suffix
        ("http://127.0.0.1:8000/", "http://127.0.0.1:9000/", True),  # an address is its own site, exactly
        ("http://127.0.0.1:8000/", "http://0.1/", False),
        ("http://[::1]:8000/", "http://[::1]/", True),
        ("https://github.io/", "https://github.io/x", True),  # a public suffix seeded: itself, not the others
        ("https://github.io/", "https://alice.github.io/", False),
        ("https://WWW.Example.COM./", "https://docs.example.com/", True),
        ("https://www.example.com/", "https://docs.example.com./", True),
        ("https://xn--r8jz45g.xn--zckzah/", "https://www.xn--r8jz45g.xn--zckzah/", True),
    ],
)
def test_scope_domain_is_the_registrable_domain(seed: str, url: str, allowed: bool) -> None:
    assert Scope.build([seed], "domain").allows(url) is allowed


def test_scope_domain_adds_a_redirect_targets_site() -> None:
    scope = Scope.build(["https://alice.github.io/"], "domain").with_host("docs.python.org")
    assert scope.allows("https://www.python.org/") and not scope.allows("https://bob.github.io/")


@pytest.mark.parametrize(
    ("include", "exclude", "url", "allowed"),
    [
        ((), (), "https://www.python.org/x", True),
        ((r"/docs/",), (), "https://www.python.org/docs/a", True),
        ((r"/docs/",), (), "https://www.python.org/blog/a", False),
        ((r"/docs/", r"/blog/"), (), "https://www.python.org/blog/a", True),
        ((), (r"\.pdf$",), "https://www.python.org/a.pdf", False),
        ((), (r"\.pdf$",), "https://www.python.org/a.pdf?x", True),
        ((r"/docs/",), (r"/old/",), "https://www.python.org/docs/old/a", False),
        ((r"^https://www\.python\.org/",), (), "https://www.python.org/x", True),
        ((r"python",), (), "https://other.org/python", False),  # host rule still applies
    ],
)
def test_scope_include_exclude(
    include: tuple[str, ...], exclude: tuple[str, ...], url: str, allowed: bool
) -> None:
    assert Scope.build(SEEDS, "host", include, exclude).allows(url) is allowed


def test_scope_rejects_bad_regex_naming_it() -> None:
    with pytest.raises(ValueError, match=r"\(unclosed"):
        Scope.build(SEEDS, "host", exclude=["ok", "(unclosed"])


def test_scope_rejects_unknown_mode() -> None:
    with pytest.raises(ValueError, match="subtree"):
        Scope.build(SEEDS, "subtree")


def test_scope_rejects_bad_seed() -> None:
    with pytest.raises(InvalidURL):
        Scope.build(["not a url"], "host")


def test_scope_is_frozen_and_hashable() -> None:
    scope = Scope.build(SEEDS, "domain", [r"x"])
    assert scope.domains == {"python.org", "example.com"}
    assert hash(scope) == hash(Scope.build(SEEDS, "domain", [r"x"]))
    with pytest.raises(AttributeError):
        scope.mode = "all"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://e.com/", None),
        ("http://e.com/a/b/c/d/e", None),
        ("http://e.com/x/x/", None),
        ("http://e.com/a/b/a/b/", None),
        ("http://e.com/2020/01/01/post", None),
        ("http://e.com/a/x/b/x/c/x", None),  # recurring, not consecutive
        ("http://e.com/x?p=/a/a/a/a", None),  # only the path counts
        ("http://e.com/x/x/x/", "repeated path segments"),
        ("http://e.com/x/x/x", "repeated path segments"),
        ("http://e.com/p/x//x/x", "repeated path segments"),  # empty segments ignored
        ("http://e.com/a/b/a/b/a/b/", "repeated path segments"),
        ("http://e.com/top/a/b/c/a/b/c/a/b/c/page.html", "repeated path segments"),
        ("http://e.com/" + "a/" * 10, "repeated path segments"),
        ("http://e.com/" + "x" * 100, "url too long"),
    ],
)
def test_trap_reason(url: str, reason: str | None) -> None:
    assert trap_reason(url, max_length=100) == reason


def test_trap_reason_length_boundary() -> None:
    url = "http://e.com/" + "x" * 87
    assert len(url) == 100
    assert trap_reason(url, 100) is None
    assert trap_reason(url + "y", 100) == "url too long"


@pytest.mark.parametrize(
    ("ip", "private"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("10.1.2.3", True),
        ("172.16.0.1", True),
        ("172.31.255.255", True),
        ("192.168.1.1", True),
        ("169.254.169.254", True),  # cloud metadata, link-local
        ("0.0.0.0", True),
        ("100.64.0.1", True),  # shared address space (CGNAT)
        ("224.0.0.1", True),  # multicast
        ("255.255.255.255", True),
        ("240.0.0.1", True),  # reserved
        ("8.8.8.8", False),
        ("93.184.216.34", False),
        ("172.32.0.1", False),
        ("::1", True),
        ("::", True),
        ("fe80::1", True),
        ("fe80::1%eth0", True),
        ("fc00::1", True),
        ("fd12:3456::1", True),
        ("ff02::1", True),
        ("[::1]", True),
        ("::ffff:127.0.0.1", True),
        ("::ffff:10.0.0.1", True),
        ("::ffff:8.8.8.8", False),
        ("::127.0.0.1", True),  # IPv4-compatible
        ("::a9fe:a9fe", True),  # ... 169.254.169.254
        ("2002:7f00:1::", True),  # 6to4 of 127.0.0.1
        ("2002:a00:1::1", True),  # 6to4 of 10.0.0.1
        ("2002:808:808::", False),  # 6to4 of 8.8.8.8
        ("64:ff9b::7f00:1", True),  # NAT64 of 127.0.0.1
        ("64:ff9b::a9fe:a9fe", True),  # NAT64 of the metadata address
        ("64:ff9b:1::c0a8:101", True),  # local-use NAT64 of 192.168.1.1
        ("64:ff9b::808:808", False),
        ("2001:0:4136:e378:8000:63bf:3fff:fdd2", True),  # Teredo: client 192.0.2.45 is documentation
        ("2001:4860:4860::8888", False),
    ],
)
def test_is_private_address(ip: str, private: bool) -> None:
    assert is_private_address(ip) is private


def test_is_private_address_rejects_names() -> None:
    with pytest.raises(ValueError):
        is_private_address("localhost")


@pytest.mark.parametrize(
    ("host", "address"),
    [
        ("127.0.0.1", "127.0.0.1"),
        ("2130706433", "127.0.0.1"),  # one part: all 32 bits
        ("0x7f.1", "127.0.0.1"),  # hexadecimal; the last part fills the bytes left
        ("0177.0.0.1", "127.0.0.1"),  # octal
        ("0x7f.0x0.0.1", "127.0.0.1"),
        ("127.0.0.1.", "127.0.0.1"),  # one trailing dot
        ("0x", "0.0.0.0"),
        ("[::1]", "::1"),
        ("::1", "::1"),
        ("[::ffff:127.0.0.1]", "::ffff:7f00:1"),
        ("example.com", None),
        ("1.2.3.4.example", None),  # does not end in a number: a name
        ("localhost", None),
    ],
)
def test_literal_address_reads_literals_as_the_resolver_does(host: str, address: str | None) -> None:
    assert literal_address(host) == address


@pytest.mark.parametrize(
    "host",
    ["[fe80::1%25eth0]", "fe80::1%eth0", "[::1%25lo]", "[v1.x]", "[example.com]", "1.2.3.4.5", "256.1.1.1",
     "1.2.3.256", "1.2.65536", "4294967296", "0x7g.1", "09.1.1.1", "example.123", "example.0x", "1..1"],
)
def test_literal_address_refuses_what_it_cannot_classify(host: str) -> None:
    with pytest.raises(ValueError):
        literal_address(host)


def test_endpoint_of() -> None:
    assert endpoint_of("http://LocalHost:8000/x") == ("localhost", 8000)
    assert endpoint_of("https://user@example.com/") == ("example.com", 443)
    assert endpoint_of("http://[::1]/") == ("[::1]", 80)
    for bad in ("ftp://example.com/", "http:///x", "http://example.com:99999/", "http://[::1/"):
        with pytest.raises(InvalidURL):
            endpoint_of(bad)
