"""URLs: normalization, link resolution, crawl scope and trap detection (addresses: crawler.addresses).

Owns what a URL *is* to the crawler. Normalization follows RFC 3986 section 6.2.2 (syntax-based
normalization: case, percent-encoding, dot segments) and 6.2.3 (default port, empty path), kept safe for
a crawler: only escapes of unreserved characters are decoded (`%7E` is `~`; `%2F` stays `%2F`) and the
query is not reordered, so a normalized URL still fetches the same resource.
Every function here is pure (no DNS, no I/O) and cheap: `normalize` runs for every link on every page.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING
from urllib.parse import quote, urlsplit

from crawler.addresses import literal_address

if TYPE_CHECKING:
    from publicsuffixlist import PublicSuffixList

SCHEMES = {"http": "80", "https": "443"}  # scheme -> default port
SCOPE_MODES = ("host", "domain", "all")
TRAP_REPEATS = 3  # a block of path segments seen this many times in a row is a trap

# RFC 3986 2.2 reserved + 2.3 unreserved (quote() always keeps letters, digits and "_.-~") + "%":
# everything else (spaces, controls, non-ASCII, "<>\"{}|\\^`") gets percent-encoded as UTF-8.
_URL_SAFE = ":/?#[]@!$&'()*+,;=%"
_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_ESCAPE = re.compile(r"%[0-9A-Fa-f]{2}")
_BAD_HOST_CHAR = re.compile(r"[^a-z0-9.\-_~!$&'()*+,;=]")
_REMOVED_CHARS = str.maketrans("", "", "\t\n\r")


class InvalidURL(ValueError):
    """Not an absolute http(s) URL with a host, or not parseable at all."""


def normalize(url: str) -> str:
    """Return the canonical form of an absolute http(s) URL; raise InvalidURL otherwise.

    Lowercases scheme and host, IDNA-encodes the host, drops the default port, the fragment and an
    empty query, makes an empty path "/", decodes escapes of unreserved characters, uppercases the
    other escapes, removes dot segments (after decoding: `/%2E%2E/` is `/../`) and percent-encodes
    characters a URL may not contain; drops the userinfo (`user:password@`: a page is the same page with
    or without it, and a password must not be stored; crawler.credentials keeps a seed's). Path and
    query are otherwise kept.
    """
    try:
        return _normalize(url)
    except ValueError as exc:  # InvalidURL, or urlsplit's "Invalid IPv6 URL", or an unencodable surrogate
        raise InvalidURL(f"{url!r}: {exc}") from None


def _normalize(url: str) -> str:
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise InvalidURL("not an http(s) URL")
    netloc = _normalize_netloc(parts.netloc, SCHEMES[scheme])
    path = _remove_dot_segments(_clean_escapes(parts.path)) or "/"
    query = _clean_escapes(parts.query)
    return f"{scheme}://{netloc}{path}?{query}" if query else f"{scheme}://{netloc}{path}"


def resolve(base: str, href: str) -> str | None:
    """Resolve a link found on page `base`; None when it leads nowhere crawlable.

    Like a browser, strips surrounding whitespace, drops tabs and newlines inside and reads a
    backslash as "/" before the query (WHATWG does so for http(s)). Non-http(s) targets (javascript:,
    mailto:, tel:, data:, ftp:) and invalid URLs give None. A fragment-only href ("#top") resolves to
    `base` itself, normalized; the caller deduplicates.
    """
    try:
        return normalize(_join(base, _clean_href(href)))
    except ValueError:
        return None


def host_of(url: str) -> str:
    """The lowercase host of a normalized URL, without port or IPv6 brackets."""
    hostport = _hostport(url)
    if hostport.startswith("["):
        return hostport[1 : hostport.index("]")]
    return hostport.partition(":")[0]


def origin_of(url: str) -> str:
    """The origin "scheme://host[:port]" of a normalized URL (robots.txt and politeness are per origin)."""
    scheme, _, _ = url.partition("://")
    return f"{scheme}://{_hostport(url)}"


def endpoint_of(url: str) -> tuple[str, int]:
    """(host, port) that `url` connects to: the host lowercase as written (an IPv6 literal in brackets),
    the port given or the scheme's default. Raises InvalidURL when there is none (not http(s), no host,
    a bad port)."""
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        raise InvalidURL(str(exc)) from None
    default = SCHEMES.get(parts.scheme.lower())
    if default is None:
        raise InvalidURL("not an http(s) URL")
    host, port = _split_port(parts.netloc.rpartition("@")[2])
    if not host:
        raise InvalidURL("no host")
    return host.lower(), int(port or default)


def trap_reason(url: str, max_length: int) -> str | None:
    """Why `url` looks like a crawler trap, or None.

    "url too long" above `max_length` characters; "repeated path segments" when some block of one or
    more non-empty path segments occurs TRAP_REPEATS times in a row (/x/x/x/, /a/b/a/b/a/b/), the
    signature of relative links that keep nesting.
    """
    if len(url) > max_length:
        return "url too long"
    segments = [s for s in urlsplit(url).path.split("/") if s]
    if _has_repeated_block(segments, TRAP_REPEATS):
        return "repeated path segments"
    return None


def site_of(host: str) -> str | None:
    """The registrable domain of a host by the Public Suffix List: "docs.python.org" -> "python.org",
    "www.github.io" -> "www.github.io" (github.io is a public suffix), "a.example.test" -> "example.test"
    (an unknown TLD is one). None for an IP address and for a public suffix itself ("github.io")."""
    host = host.rstrip(".")
    try:
        if literal_address(host) is not None:
            return None
    except ValueError:
        return None  # a literal no one can read is no site either
    return _public_suffix_list().privatesuffix(host)


@functools.cache
def _public_suffix_list() -> PublicSuffixList:
    """The PSL snapshot packaged with publicsuffixlist (nothing is fetched), parsed once, on first use."""
    from publicsuffixlist import PublicSuffixList

    return PublicSuffixList()


@dataclass(frozen=True)
class Scope:
    """Which URLs a crawl may follow. Seeds are always crawled: the caller enqueues them without
    asking; `allows` applies the rules to the links found along the way."""

    mode: str
    hosts: frozenset[str]  # exact hosts of the seeds, any port of them ("host" mode; "domain" mode too)
    domains: frozenset[str]  # "domain" mode: the seed hosts' sites (see site_of), with their subdomains
    include: tuple[re.Pattern[str], ...] = ()
    exclude: tuple[re.Pattern[str], ...] = ()
    endpoints: frozenset[tuple[str, int]] = frozenset()  # (host, port) of each seed: the guard trusts those

    @classmethod
    def build(
        cls, seeds: Iterable[str], mode: str, include: Iterable[str] = (), exclude: Iterable[str] = ()
    ) -> Scope:
        """Raise ValueError for an unknown mode or a bad regex, InvalidURL for a bad seed."""
        if mode not in SCOPE_MODES:
            raise ValueError(f"unknown scope {mode!r}; expected one of {', '.join(SCOPE_MODES)}")
        normalized = [normalize(seed) for seed in seeds]
        hosts = frozenset(host_of(seed) for seed in normalized)
        domains = frozenset(site for site in map(site_of, hosts) if site)
        endpoints = frozenset(endpoint_of(seed) for seed in normalized)
        return cls(mode, hosts, domains, _compile_all(include), _compile_all(exclude), endpoints)

    def with_host(self, host: str) -> Scope:
        """This scope with `host` as one more seed host (where a seed's redirect landed)."""
        site = site_of(host)
        return replace(self, hosts=self.hosts | {host}, domains=self.domains | ({site} if site else set()))

    def allows(self, url: str) -> bool:
        """Whether a normalized URL is inside the scope and passes include/exclude (re.search)."""
        if not self._host_allowed(host_of(url)):
            return False
        if self.include and not any(p.search(url) for p in self.include):
            return False
        return not any(p.search(url) for p in self.exclude)

    def _host_allowed(self, host: str) -> bool:
        if self.mode == "host":
            return host in self.hosts
        if self.mode == "domain":
            return host in self.hosts or _in_domains(host.rstrip("."), self.domains)
        return True


# --- helpers ---------------------------------------------------------------------------------------


def _normalize_netloc(netloc: str, default_port: str) -> str:
    host, port = _split_port(netloc.rpartition("@")[2])
    host = _normalize_host(host)
    if port == default_port:
        port = ""
    return f"{host}:{port}" if port else host


def _split_port(hostport: str) -> tuple[str, str]:
    """("host", "port") with the port as canonical digits ("" when absent or empty)."""
    if hostport.startswith("["):
        end = hostport.find("]") + 1
        host, rest = hostport[:end], hostport[end:]
        if rest and not rest.startswith(":"):
            raise InvalidURL("junk after IPv6 address")
        port = rest[1:]
    else:
        host, _, port = hostport.partition(":")
    if not port:
        return host, ""
    if not (port.isascii() and port.isdigit()) or int(port) > 65535:
        raise InvalidURL(f"invalid port {port!r}")
    return host, str(int(port))


def _normalize_host(host: str) -> str:
    if host.startswith("["):
        return _normalize_ipv6(host)
    if "%" in host:
        host = _ESCAPE.sub(_normal_escape, host)  # what is left of "%" makes the host invalid below
    if not host.isascii():
        host = _idna(host)
    host = host.lower()
    if not host or _BAD_HOST_CHAR.search(host):
        raise InvalidURL(f"invalid host {host!r}")
    return host


def _normalize_ipv6(host: str) -> str:
    try:
        return f"[{ipaddress.IPv6Address(host[1:-1]).compressed}]"
    except ValueError:
        raise InvalidURL(f"invalid IPv6 address {host!r}") from None


def _idna(host: str) -> str:
    """IDNA 2008 with UTS #46 mapping, as browsers and requests do (so "faß.de" stays distinct)."""
    import idna  # a dependency of requests; imported only for the rare non-ASCII host

    try:
        return idna.encode(host, uts46=True).decode("ascii")
    except (idna.IDNAError, UnicodeError) as exc:
        raise InvalidURL(f"invalid internationalized host: {exc}") from None


def _clean_escapes(text: str) -> str:
    """Percent-encode what may not appear in a URL (UTF-8) and put existing escapes in normal form."""
    if not text:
        return text
    text = quote(text, safe=_URL_SAFE)
    if "%" in text:
        text = _ESCAPE.sub(_normal_escape, text)
    return text


def _normal_escape(match: re.Match[str]) -> str:
    """RFC 3986 6.2.2.1-2: an escape of an unreserved character is that character; others, uppercase hex."""
    char = chr(int(match.group()[1:], 16))
    return char if char in _UNRESERVED else match.group().upper()


def _remove_dot_segments(path: str) -> str:
    """RFC 3986 5.2.4 for an absolute path (one that starts with "/")."""
    if "/." not in path:
        return path
    output: list[str] = []
    segments = path.split("/")[1:]
    for segment in segments:
        if segment == "..":
            if output:
                output.pop()
        elif segment != ".":
            output.append(segment)
    if segments[-1] in (".", ".."):
        output.append("")  # "/a/b/.." -> "/a/", not "/a"
    return "/" + "/".join(output)


def _join(base: str, ref: str) -> str:
    """RFC 3986 5.2.2 against a normalized base, non-strict ("http:g" on an http page is "g"); dot
    segments are left to normalize. Not urljoin, which drops an empty ";" parameter ("g;" -> "g")."""
    parts = urlsplit(base)
    ref_scheme = urlsplit(ref).scheme
    if ref_scheme and ref_scheme != parts.scheme:
        return ref
    if ref_scheme:
        ref = ref.partition(":")[2]
    if ref.startswith("//"):
        return f"{parts.scheme}:{ref}"
    path, qmark, query = ref.partition("#")[0].partition("?")
    if not path:
        path = parts.path
        if not qmark:
            qmark, query = "?", parts.query
    elif not path.startswith("/"):
        path = parts.path[: parts.path.rfind("/") + 1] + path if parts.path else "/" + path
    return f"{parts.scheme}://{parts.netloc}{path}{qmark}{query}"


def _clean_href(href: str) -> str:
    href = href.strip().translate(_REMOVED_CHARS)
    if "\\" not in href:
        return href
    cut = min((i for i in (href.find("?"), href.find("#")) if i >= 0), default=len(href))
    return href[:cut].replace("\\", "/") + href[cut:]


def _hostport(url: str) -> str:
    """The authority of an absolute URL without its userinfo."""
    authority = url.partition("://")[2]
    for sep in "/?#":
        authority = authority.partition(sep)[0]
    return authority.rpartition("@")[2]


def _has_repeated_block(segments: list[str], repeats: int) -> bool:
    """True if some block of k segments occurs `repeats` times in a row.

    For each block length k, a run of (repeats - 1) * k consecutive positions where
    segments[i] == segments[i + k] means the block starting at the run repeats `repeats` times.
    O(n^2) in the segment count (which max_length bounds), O(n) when no segment occurs `repeats` times.
    """
    n = len(segments)
    if n < repeats or max(Counter(segments).values()) < repeats:
        return False
    for k in range(1, n // repeats + 1):
        run = 0
        for i in range(n - k):
            run = run + 1 if segments[i] == segments[i + k] else 0
            if run >= (repeats - 1) * k:
                return True
    return False


def _in_domains(host: str, domains: frozenset[str]) -> bool:
    """True if `host` is one of `domains` or a subdomain of one."""
    while True:
        if host in domains:
            return True
        _, dot, host = host.partition(".")
        if not dot:
            return False


def _compile_all(patterns: Iterable[str]) -> tuple[re.Pattern[str], ...]:
    compiled = []
    for pattern in patterns:
        try:
            compiled.append(re.compile(pattern))
        except re.error as exc:
            raise ValueError(f"invalid regular expression {pattern!r}: {exc}") from None
    return tuple(compiled)
