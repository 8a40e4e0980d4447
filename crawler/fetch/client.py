"""The HTTP client a crawl presents to servers: User-Agent, extra headers, proxy, TLS trust, cookies.

`Client` holds those choices (from the crawl's settings, checked before anything is written);
`make_session` builds a requests Session from them for one engine's greenlets or thread. Both engines
share one cookie store per crawl process (`Client.cookie_store`): a jar per host, bounded, so a site
that sets a cookie per page cannot grow its Cookie header without end.

The environment's proxy variables (HTTPS_PROXY, ...) are not read, since NO_PROXY and per-scheme
proxies would make where a request goes depend on the shell: `notices` names the ones that are set, so
the user learns to give --proxy. REQUESTS_CA_BUNDLE and CURL_CA_BUNDLE are read, as requests reads
them, when --ca-bundle is not given.
"""

from __future__ import annotations

import email.message
import os
import re
import threading
import warnings
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http.cookiejar import Cookie, CookiePolicy
from urllib.parse import urlsplit

import requests
import urllib3
from requests.cookies import MockRequest, MockResponse, RequestsCookieJar, get_cookie_header

from crawler.credentials import Credentials
from crawler.fetch.deadline import WatchedAdapter
from crawler.settings import Settings

# br only when urllib3 can decode it (it imported brotli or brotlicffi)
ACCEPT_ENCODING = "gzip, deflate, br" if "br" in urllib3.util.request.ACCEPT_ENCODING else "gzip, deflate"
COOKIES_PER_HOST = 50  # RFC 6265 6.1 asks for at least 50 per domain
COOKIE_BYTES_PER_HOST = 8 * 1024  # a Cookie header most servers take (nginx: 8 KiB lines)
HOSTS = 10_000  # hosts whose cookies are kept
TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # a header name (RFC 9110 5.6.2)
BAD_VALUE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")  # controls but tab: never in a header value
SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "x-api-key"})
MASK = "***"  # a secret as stored settings show it
PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")
CA_VARIABLES = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")  # read as requests reads them, in this order


@dataclass(frozen=True)
class Client:
    user_agent: str = "crawler"
    headers: tuple[tuple[str, str], ...] = ()  # sent with every request, after the defaults
    proxy: str | None = None  # every request (http and https) goes through it
    ca_bundle: str | None = None  # trust these CAs instead of certifi's
    insecure: bool = False  # don't check TLS certificates at all
    cookies: bool = True
    credentials: Credentials | None = None  # basic auth by origin (the seeds' userinfo, --auth)

    def cookie_store(self) -> HostCookies | None:
        """A new store for one crawl process's sessions (both engines share one), None with --no-cookies."""
        return HostCookies() if self.cookies else None


def client_for(settings: Settings, credentials: Credentials | None = None,
               environ: Mapping[str, str] = os.environ) -> Client:
    """The crawl's client; ValueError (one line) for an option no request could be sent with, or a
    secret a resumed crawl's settings do not hold (see masked_header). Without --ca-bundle, the CA bundle
    REQUESTS_CA_BUNDLE or CURL_CA_BUNDLE names is trusted (the machine's, not the crawl's: not stored)."""
    check_user_agent(settings.user_agent)
    check_proxy(settings.proxy)
    if settings.proxy and f":{MASK}@" in settings.proxy:
        raise ValueError("the crawl's --proxy password is not stored with it: give --proxy again")
    if any(text.partition(":")[2].strip() == MASK for text in settings.header):
        raise ValueError("the crawl's credential headers are not stored with it: give every --header again")
    check_ca_bundle("--ca-bundle", settings.ca_bundle)
    ca_bundle = settings.ca_bundle
    for variable in CA_VARIABLES if ca_bundle is None else ():
        if environ.get(variable):
            ca_bundle = environ[variable]
            check_ca_bundle(variable, ca_bundle)
            break
    headers = tuple(parse_header(text) for text in settings.header)
    return Client(settings.user_agent, headers, settings.proxy, ca_bundle, settings.insecure, settings.cookies,
                  credentials)


def parse_header(text: str) -> tuple[str, str]:
    """`Name: value` as given to --header; ValueError (one line) for anything that is not one header."""
    name, colon, value = text.partition(":")
    if not colon or not TOKEN.fullmatch(name.strip()):
        raise ValueError(f"--header {text!r}: expected 'Name: value'")
    if BAD_VALUE.search(value):
        raise ValueError(f"--header {name.strip()}: the value holds a line break or control character")
    return name.strip(), value.strip()


def masked_header(text: str) -> str:
    """`Name: value` as a crawl's stored settings keep it: a credential's value masked."""
    name = text.partition(":")[0]
    return f"{name}: {MASK}" if name.strip().lower() in SECRET_HEADERS else text


def check_user_agent(user_agent: str) -> None:
    if not user_agent.strip() or BAD_VALUE.search(user_agent):
        raise ValueError(f"--user-agent {user_agent!r}: empty, or holds a line break or control character")


def check_proxy(proxy: str | None) -> None:
    if proxy is None:
        return
    parts = urlsplit(proxy)
    if parts.scheme not in ("http", "https", "socks5", "socks5h", "socks4") or not parts.hostname:
        raise ValueError(f"--proxy {proxy!r}: expected a URL such as http://HOST:PORT")


def check_ca_bundle(named: str, path: str | None) -> None:
    if path is not None and not (os.path.isfile(path) and os.access(path, os.R_OK)):
        raise ValueError(f"{named} {path}: no readable file there")


def notices(client: Client, environ: Mapping[str, str]) -> list[str]:
    """What the user should know before the crawl sends a request: certificates unchecked, and each set
    proxy variable (other tools read them, a crawl does not) when --proxy is not given."""
    unused = [] if client.proxy else [name for name in PROXY_VARIABLES if environ.get(name)]
    lines = [f"{name} is set but not used; give --proxy to use it" for name in unused]
    return lines + (["--insecure: TLS certificates are not checked"] if client.insecure else [])


def quiet_if_insecure(client: Client) -> None:
    """With --insecure, urllib3's warning on every request is not shown: `notices` said it once."""
    if client.insecure:
        warnings.filterwarnings("ignore", category=urllib3.exceptions.InsecureRequestWarning)


def make_session(pool_size: int, client: Client, cookies: HostCookies | None = None) -> CrawlSession:
    """A session for `fetch_one`: `pool_size` kept connections per host, no own retries, the client's
    headers, proxy and TLS trust, basic auth to the origins the client has credentials for, and `cookies`
    (shared with the engine's other sessions; None: a store of its own, or none with --no-cookies)."""
    session = CrawlSession(cookies if cookies is not None else client.cookie_store())
    session.trust_env = False
    if client.credentials:
        session.auth = OriginAuth(client.credentials)
    adapter = WatchedAdapter(pool_connections=pool_size, pool_maxsize=pool_size, max_retries=0)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.headers.update({"User-Agent": client.user_agent, "Accept-Encoding": ACCEPT_ENCODING})
    session.headers.update(dict(client.headers))
    if client.proxy:
        session.proxies = {"http": client.proxy, "https": client.proxy}
    session.verify = False if client.insecure else client.ca_bundle or True
    return session


class OriginAuth(requests.auth.AuthBase):
    """Basic auth on each request (each hop: redirects are followed one request at a time) whose origin
    has credentials; other origins get no Authorization header."""

    def __init__(self, credentials: Credentials) -> None:
        self.credentials = credentials

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        found = self.credentials.for_url(request.url or "")
        return requests.auth.HTTPBasicAuth(*found)(request) if found else request


class CrawlSession(requests.Session):
    """A requests Session whose cookies live in `host_cookies`, one bounded jar per host, not in the
    session's own jar (which requests copies whole into every request: slow once it holds many hosts)."""

    def __init__(self, host_cookies: HostCookies | None) -> None:
        super().__init__()
        self.cookies.set_policy(NoCookies())
        self.host_cookies = host_cookies

    def open(self, url: str, headers: Mapping[str, str] | None, timeout: tuple[float, float]) -> requests.Response:
        """GET `url` with the session's headers (then `headers`), auth and hooks, the body left to stream,
        a redirect not followed. Session.get without what a crawl never uses: request params and cookies
        (they come from host_cookies), and the merging of those and of the environment's settings (which
        trust_env=False empties anyway), about a fifth of a request's CPU. `send` adds the session's
        proxies and TLS trust as Session.get does."""
        merged = requests.structures.CaseInsensitiveDict(self.headers)
        if headers:
            merged.update(headers)
        prepared = requests.PreparedRequest()
        prepared.prepare(method="GET", url=url, headers=merged, auth=self.auth, cookies=self.cookies, hooks=self.hooks)
        return self.send(prepared, timeout=timeout, allow_redirects=False, stream=True)


class HostCookies:
    """Cookies as a browser's private window per site would keep them: a jar per host (a cookie one host
    sets for its parent domain is sent back to that host only, see HostJar for the bounds); the jars of
    at most HOSTS hosts, the least recently used forgotten first. Safe from any thread or greenlet.
    `relay` is told of the cookies a response set (a fetch process tells the crawl's others)."""

    def __init__(self, relay: Callable[[str, list[str]], None] | None = None) -> None:
        self._jars: OrderedDict[str, HostJar] = OrderedDict()
        self._lock = threading.Lock()
        self.relay = relay

    def header(self, url: str) -> str | None:
        """The Cookie header for a request to `url`, if its host's jar holds cookies for it."""
        jar = self._jar(url, create=False)
        return None if jar is None else get_cookie_header(jar, requests.Request("GET", url))

    def keep(self, response: requests.Response) -> None:
        """The Set-Cookie headers of `response` (headers read, body not needed)."""
        if "set-cookie" in response.headers:
            values = response.raw.headers.getlist("set-cookie")
            self.keep_values(response.url, values)
            if self.relay is not None:
                self.relay(response.url, values)

    def keep_values(self, url: str, values: list[str]) -> None:
        """Set-Cookie header values a response from `url` carried (here, or in a fetch process)."""
        jar = self._jar(url, create=True)
        assert jar is not None
        message = email.message.Message()
        for value in values:
            message["Set-Cookie"] = value
        jar.extract_cookies(MockResponse(message), MockRequest(requests.Request("GET", url)))  # type: ignore[arg-type]

    def _jar(self, url: str, create: bool) -> HostJar | None:
        host = (urlsplit(url).hostname or "").lower()
        with self._lock:
            jar = self._jars.get(host)
            if jar is None and create:
                jar = self._jars[host] = HostJar()
                while len(self._jars) > HOSTS:
                    self._jars.popitem(last=False)
            if jar is not None:
                self._jars.move_to_end(host)
            return jar


class HostJar(RequestsCookieJar):
    """One host's cookies. A new cookie past COOKIES_PER_HOST cookies or COOKIE_BYTES_PER_HOST bytes (of the
    Cookie header they make) is not kept, so the ones set first (a session's, a consent's) stay; one already held is
    updated unless that takes the jar past the bytes."""

    def set_cookie(self, cookie: Cookie, *args: object, **kwargs: object) -> None:
        held = {(c.domain, c.path, c.name): _size(c) for c in self}
        key = (cookie.domain, cookie.path, cookie.name)
        size = sum(held.values()) - held.get(key, 0) + _size(cookie)
        if size > COOKIE_BYTES_PER_HOST or (key not in held and len(held) >= COOKIES_PER_HOST):
            return
        super().set_cookie(cookie, *args, **kwargs)


def _size(cookie: Cookie) -> int:
    """Its bytes in a Cookie header: `name=value; `."""
    return len(cookie.name) + len(cookie.value or "") + 3


class NoCookies(CookiePolicy):
    """A jar that keeps and sends nothing (the sessions' own jars; --no-cookies has no HostCookies)."""

    netscape, rfc2965, hide_cookie2 = True, False, False

    def set_ok(self, cookie: Cookie, request: object) -> bool:
        return False

    def return_ok(self, cookie: Cookie, request: object) -> bool:
        return False

    def domain_return_ok(self, domain: str, request: object) -> bool:
        return False

    def path_return_ok(self, path: str, request: object) -> bool:
        return False
