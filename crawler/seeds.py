"""Seeds: turning the SEEDS arguments (URLs, or files of URLs) into normalized seed URLs (without their
userinfo: a seed's `user:password@` goes to crawler.credentials, never into a stored URL).

A file (or `-`, standard input) has one URL a line, UTF-8 (a byte-order mark is dropped); blank lines
and lines starting with '#' are ignored; a line that is not an http(s) URL, or not UTF-8, is skipped with
a warning naming the file and line. A missing file is an error; so is an argument that is neither a file
nor a URL (`example.com`: the message says to add the scheme, rather than guessing one).
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from pathlib import Path

from crawler.credentials import Credentials
from crawler.urls import InvalidURL, normalize

FILE_SUFFIXES = frozenset({"txt", "csv", "tsv", "lst", "list", "urls", "json", "jsonl", "gz"})


class SeedError(Exception):
    """The seeds can't be used at all (a missing file, nothing valid left)."""


def looks_like_url(arg: str) -> bool:
    return "://" in arg


def read_seeds(args: Iterable[str], credentials: Credentials | None = None) -> tuple[list[str], list[str]]:
    """(seed URLs, normalized and deduplicated in order; warnings about skipped lines). The seeds'
    userinfo is noted in `credentials`, when given."""
    seeds: dict[str, None] = {}
    warnings: list[str] = []
    for where, text in _lines(args):
        try:
            url = _decoded(text)
            seeds[normalize(url)] = None
        except (InvalidURL, UnicodeDecodeError) as exc:
            warnings.append(f"{where}: {_reason(exc)}, skipped")
        else:
            if credentials is not None:
                credentials.note(url)
    if not seeds:
        raise SeedError(nothing_valid(warnings))
    return list(seeds), warnings


def nothing_valid(warnings: list[str]) -> str:
    """The one line for seeds of which none is usable, with the first reason."""
    if not warnings:
        return "no valid seed URLs given"
    more = f", and {len(warnings) - 1} more" if len(warnings) > 1 else ""
    return f"no valid seed URLs given ({warnings[0].removesuffix(', skipped')}{more})"


def _decoded(text: str | bytes) -> str:
    return text.decode("utf-8") if isinstance(text, bytes) else text


def _reason(exc: Exception) -> str:
    if isinstance(exc, UnicodeDecodeError):
        return f"not UTF-8 (byte 0x{exc.object[exc.start]:02x} at column {exc.start + 1})"
    return str(exc)[:200]


def _lines(args: Iterable[str]) -> Iterator[tuple[str, str | bytes]]:
    for arg in args:
        if looks_like_url(arg):
            yield "argument", arg
        else:
            yield from _file_lines(arg)


def _file_lines(name: str) -> Iterator[tuple[str, bytes]]:
    """The file's non-blank, non-comment lines, as bytes: each is decoded on its own, so one bad byte
    costs one line."""
    raw = _read(name)
    for number, line in enumerate(raw.removeprefix(b"\xef\xbb\xbf").splitlines(), 1):
        text = line.strip()
        if text and not text.startswith(b"#"):
            yield f"{'stdin' if name == '-' else name}:{number}", text


def _read(name: str) -> bytes:
    if name == "-":
        return sys.stdin.buffer.read()
    try:
        return Path(name).read_bytes()
    except FileNotFoundError:
        hint = f"; for a site, give its URL: https://{name}/" if _looks_like_host(name) else ""
        raise SeedError(f"no such seeds file: {name}{hint}") from None
    except OSError as exc:
        raise SeedError(f"can't read seeds file {name}: {exc.strerror}") from None


def _looks_like_host(name: str) -> bool:
    """`example.com`, `www.python.org/doc`: a dot in the first segment, no spaces, not a file name."""
    head = name.split("/", 1)[0]
    suffix = head.rsplit(".", 1)[-1].lower()
    return "." in head.strip(".") and suffix not in FILE_SUFFIXES and not any(c.isspace() for c in name)
