"""The SSRF rule: a crawl may not wander onto loopback, private, link-local or unspecified addresses.

Only the seeds' own endpoints, each a (host, port) (`trusted`), or `allow_private=True` lift the rule: a
seed on localhost:8000 trusts no other port of localhost (Redis on 6379 stays out). It is enforced twice:
  * before the fetch (`check`): an address literal is judged as written, without DNS, read as the resolver
    reads it (http://2130706433/ and http://0x7f.1/ are 127.0.0.1); one that cannot be classified (an
    IPv6 zone, 1.2.3.4.5) is refused. A name is resolved with `socket.getaddrinfo` (cooperative under
    gevent) and blocked if ANY of its addresses is private;
  * on every connection a fetch opens (`enforcing` + `PeerChecked`): the connection resolves the name again,
    so the address it actually reached (`getpeername`) is judged too, before a byte is sent; a private one
    raises `Blocked` ("blocked: private address 127.0.0.1 (connected)"). DNS rebinding between the check
    and the connect is caught there. Through --proxy the peer is the proxy the user chose: only the
    check before the fetch applies (the proxy resolves the name).
"""

from __future__ import annotations

import contextlib
import contextvars
import socket
import threading
from collections import OrderedDict
from collections.abc import Collection, Iterator

from crawler.addresses import is_private_address, literal_address
from crawler.urls import InvalidURL, endpoint_of

CACHE_SIZE = 10_000  # hosts remembered; the oldest is forgotten first


class Blocked(Exception):
    """A connection reached an address the rule forbids; the message is the fetch's error."""


class AddressGuard:
    """Decides per URL whether its host may be fetched; results are cached per host."""

    def __init__(self, trusted: Collection[tuple[str, int]], allow_private: bool) -> None:
        self.trusted = frozenset(_endpoint(host, port) for host, port in trusted)
        self.allow_private = allow_private
        self._cache: OrderedDict[str, str | None] = OrderedDict()
        self._lock = threading.Lock()  # held only around dict operations: safe under gevent too

    def check(self, url: str) -> str | None:
        """None if `url` may be fetched, else why not, e.g. "blocked: private address 127.0.0.1"."""
        try:
            host, port = endpoint_of(url)
        except InvalidURL as exc:
            return f"blocked: no host to judge ({exc})"
        if self.allow_private or _endpoint(host, port) in self.trusted:
            return None
        return self._verdict(host)

    def check_peer(self, host: str, port: int, address: str) -> str | None:
        """None if a connection to `host`:`port` may go on at `address` (where it connected), else why not."""
        if self.allow_private or _endpoint(host, port) in self.trusted:
            return None
        verdict = _blocked([address.split("%")[0]])
        return verdict and f"{verdict} (connected)"

    def adopt(self, target: str, seed: str) -> bool:
        """Take `target`, where the URL `seed` redirected, like a seed (the user meant it), unless that would
        open private addresses a public seed could not reach: a seed on the internet redirecting to
        127.0.0.1 or 169.254.169.254 is refused. Whether it was adopted. Only a private target (of a
        private seed) is trusted, on its own port; a public one needs no trust and stays held to the rule,
        at connect too."""
        try:
            (host, port), (seed_host, _) = endpoint_of(target), endpoint_of(seed)
        except InvalidURL:
            return False
        if self.allow_private or self._verdict(host) is None:
            return True
        if self._verdict(seed_host) is None:
            return False
        self.trusted = self.trusted | {_endpoint(host, port)}
        return True

    def _verdict(self, host: str) -> str | None:
        """Why `host` (an IPv6 literal in brackets or not) is blocked, or None."""
        try:
            literal = literal_address(host)
        except ValueError as exc:
            return f"blocked: address literal not understood: {host} ({exc})"
        if literal is not None:
            return _blocked([literal])
        with self._lock:
            if host in self._cache:
                self._cache.move_to_end(host)
                return self._cache[host]
        addresses = _resolve(host)
        if addresses is None:
            return None  # unresolvable: the fetch fails with a connection error; not cached
        verdict = _blocked(addresses)
        self._remember(host, verdict)
        return verdict

    def _remember(self, host: str, verdict: str | None) -> None:
        with self._lock:
            self._cache[host] = verdict
            while len(self._cache) > CACHE_SIZE:
                self._cache.popitem(last=False)


def _endpoint(host: str, port: int) -> tuple[str, int]:
    """(host, port) as the trusted set holds it: the host lowercase, without IPv6 brackets."""
    return host.lower().strip("[]"), int(port)


def _resolve(host: str) -> list[str] | None:
    """Every address `host` resolves to; None when it does not resolve."""
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return None
    return [str(info[4][0]).split("%")[0] for info in infos]


def _blocked(addresses: list[str]) -> str | None:
    for address in addresses:
        if is_private_address(address):
            return f"blocked: private address {address}"
    return None


_ENFORCED: contextvars.ContextVar[AddressGuard | None] = contextvars.ContextVar("address_guard", default=None)


@contextlib.contextmanager
def enforcing(guard: AddressGuard | None) -> Iterator[None]:
    """Check the peer of every connection opened in this thread or greenlet against `guard` (None: none)."""
    token = _ENFORCED.set(guard)
    try:
        yield
    finally:
        _ENFORCED.reset(token)


class PeerChecked:
    """Mixin for urllib3 connections: the socket just connected (TLS not begun, nothing sent) is closed
    and `Blocked` raised when the guard being enforced forbids its peer address."""

    host: str
    port: int

    def _new_conn(self) -> socket.socket:
        sock: socket.socket = super()._new_conn()  # type: ignore[misc]
        guard = _ENFORCED.get()
        if guard is not None and getattr(self, "proxy", None) is None:  # (--proxy: the peer is the proxy)
            verdict = guard.check_peer(self.host, self.port, str(sock.getpeername()[0]))
            if verdict:
                sock.close()
                raise Blocked(verdict)
        return sock
