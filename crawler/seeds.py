"""Seeds: turning the SEEDS arguments (URLs, or files of URLs) into normalized seed URLs.

A file has one URL a line; blank lines and lines starting with '#' are ignored; a line that is not an
http(s) URL is skipped with a warning naming the file and line. A missing file is an error.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

from crawler.urls import InvalidURL, normalize


class SeedError(Exception):
    """The seeds can't be used at all (a missing file, nothing valid left)."""


def looks_like_url(arg: str) -> bool:
    return "://" in arg


def read_seeds(args: Iterable[str]) -> tuple[list[str], list[str]]:
    """(seed URLs, normalized and deduplicated in order; warnings about skipped lines)."""
    seeds: dict[str, None] = {}
    warnings: list[str] = []
    for where, text in _lines(args):
        try:
            seeds[normalize(text)] = None
        except InvalidURL as exc:
            warnings.append(f"{where}: {str(exc)[:200]}, skipped")
    if not seeds:
        raise SeedError(nothing_valid(warnings))
    return list(seeds), warnings


def nothing_valid(warnings: list[str]) -> str:
    """The one line for seeds of which none is usable, with the first reason."""
    if not warnings:
        return "no valid seed URLs given"
    more = f", and {len(warnings) - 1} more" if len(warnings) > 1 else ""
    return f"no valid seed URLs given ({warnings[0].removesuffix(', skipped')}{more})"


def _lines(args: Iterable[str]) -> Iterator[tuple[str, str]]:
    for arg in args:
        if looks_like_url(arg):
            yield "argument", arg
        else:
            yield from _file_lines(arg)


def _file_lines(name: str) -> Iterator[tuple[str, str]]:
    try:
        raw = Path(name).read_bytes()
    except FileNotFoundError:
        raise SeedError(f"no such seeds file: {name}") from None
    except OSError as exc:
        raise SeedError(f"can't read seeds file {name}: {exc.strerror}") from None
    for number, line in enumerate(raw.decode("utf-8", errors="replace").splitlines(), 1):
        text = line.strip()
        if text and not text.startswith("#"):
            yield f"{name}:{number}", text
