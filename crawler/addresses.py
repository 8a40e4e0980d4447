"""Addresses: what an IP address literal in a URL host is, and whether it may be reached from a crawl.

Pure functions, no DNS: `literal_address` reads a host written as an address (IPv4 the way browsers and
the system resolver read it, IPv6 with or without brackets), `is_private_address` judges one (an IPv6
address that embeds IPv4 ones by those). The address guard (crawler.fetch.guard) applies them.
"""

from __future__ import annotations

import ipaddress
import re


def is_private_address(ip: str) -> bool:
    """True for any address that is not globally routable unicast: loopback, private, link-local,
    unspecified, shared (CGNAT), reserved, documentation, multicast. An IPv6 address that embeds IPv4
    addresses (see embedded_ipv4) is judged by them. Raises ValueError if `ip` is not an address.
    """
    addr = ipaddress.ip_address(ip.strip("[]"))
    embedded = embedded_ipv4(addr) if isinstance(addr, ipaddress.IPv6Address) else []
    if embedded:
        return any(is_private_address(str(v4)) for v4 in embedded)
    return not addr.is_global or addr.is_multicast


NAT64 = (ipaddress.IPv6Network("64:ff9b::/96"), ipaddress.IPv6Network("64:ff9b:1::/48"))  # RFC 6052, 8215
COMPATIBLE = ipaddress.IPv6Network("::/96")  # deprecated IPv4-compatible ::a.b.c.d (RFC 4291 2.5.5.1)


def embedded_ipv4(addr: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address carries and that a network may route it to: IPv4-mapped
    (::ffff:a.b.c.d), IPv4-compatible (::a.b.c.d), 6to4 (2002:aabb:ccdd::), Teredo (2001::/32: server
    and client) and NAT64 (64:ff9b::a.b.c.d). Such an address is judged by them, so `[::ffff:127.0.0.1]`
    or `[64:ff9b::a00:1]` reach no private address."""
    if addr.ipv4_mapped is not None:
        return [addr.ipv4_mapped]
    if addr.sixtofour is not None:
        return [addr.sixtofour]
    if addr.teredo is not None:
        return list(addr.teredo)
    if any(addr in net for net in NAT64) or (addr in COMPATIBLE and int(addr) > 1):
        return [ipaddress.IPv4Address(int(addr) & 0xFFFFFFFF)]
    return []


def literal_address(host: str) -> str | None:
    """The IP address a lowercase URL host is written as (an IPv6 one in brackets or not), as ipaddress
    writes it; None for a name, which only a resolver can answer. Raises ValueError for a literal that
    cannot be classified: an IPv6 zone ("fe80::1%25eth0"), brackets around no IPv6 address, or a host
    ending in a number that is no IPv4 address. IPv4 is read as the WHATWG URL standard (and the system
    resolver) reads it: "0x7f.1", "0177.0.0.1" and "2130706433" are 127.0.0.1; "1.2.3.4.5" is nothing."""
    bare = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if bare != host or ":" in bare or "%" in bare:
        if "%" in bare:
            raise ValueError("an IPv6 zone")
        return ipaddress.IPv6Address(bare).compressed
    if not _ends_in_number(bare):
        return None
    return str(ipaddress.IPv4Address(_ipv4_value(bare)))


_IPV4_DIGITS = {10: re.compile(r"[0-9]+"), 8: re.compile(r"[0-7]+"), 16: re.compile(r"[0-9a-f]+")}


def _ipv4_parts(host: str) -> list[str]:
    parts = host.split(".")
    if len(parts) > 1 and parts[-1] == "":
        parts.pop()  # one trailing dot: the root of the DNS
    return parts


def _ends_in_number(host: str) -> bool:
    """WHATWG URL "ends in a number": then the host is an IPv4 address or no host at all."""
    last = _ipv4_parts(host)[-1]
    try:
        _ipv4_number(last)
    except ValueError:
        return False
    return True


def _ipv4_number(part: str) -> int:
    """One part of an IPv4 literal: decimal, 0x hexadecimal, or 0 octal. ValueError if none of them."""
    radix, digits = 10, part
    if part.startswith("0x"):
        radix, digits = 16, part[2:]
    elif len(part) > 1 and part.startswith("0"):
        radix, digits = 8, part[1:]
    if not part or (digits and not _IPV4_DIGITS[radix].fullmatch(digits)):
        raise ValueError(f"{part!r} is no IPv4 number")
    return int(digits, radix) if digits else 0


def _ipv4_value(host: str) -> int:
    """The 32-bit value of an IPv4 literal of 1 to 4 parts, the last one filling the bytes left."""
    parts = _ipv4_parts(host)
    if len(parts) > 4:
        raise ValueError("more than 4 parts")
    numbers = [_ipv4_number(part) for part in parts]
    if any(n > 255 for n in numbers[:-1]) or numbers[-1] >= 256 ** (5 - len(numbers)):
        raise ValueError("a part out of range")
    return numbers[-1] + sum(n << 8 * (3 - i) for i, n in enumerate(numbers[:-1]))
