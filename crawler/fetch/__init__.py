"""Fetch engines: the name -> "module:Class" table, imported lazily so gevent loads only when chosen.

Both engines call the one blocking `crawler.fetch.http.fetch_one`, whose per-attempt deadline is enforced by
`crawler.fetch.deadline`; `crawler.fetch.guard` owns the SSRF rule.
"""

from __future__ import annotations

import importlib
from typing import Any

ENGINES = {
    "gevent": "crawler.fetch.green:GeventEngine",
    "threads": "crawler.fetch.threads:ThreadEngine",
}


def load_engine(name: str) -> Any:
    """The engine class registered as `name`; ValueError for an unknown name."""
    try:
        target = ENGINES[name]
    except KeyError:
        raise ValueError(f"unknown engine {name!r}; choose from {', '.join(sorted(ENGINES))}") from None
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)
