"""Store: where a crawl's pages go, as the Sink Protocol the crawl loop writes to, with an in-memory fake.

The SQL implementation is crawler.store.sql (Store.pages); crawler.store.db holds the SQL plumbing
(engines, run_write, migrations, StoreError), crawler.store.query the read-only side (`crawl sql`,
`crawl stats`), crawler.store.schema the tables.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from crawler.records import Outcome


class Sink(Protocol):
    def save(self, outcomes: Sequence[Outcome]) -> None:
        """Store the outcomes (pages and their links), each URL once: a URL already stored is skipped."""
        ...

    def count(self) -> int:
        """Pages the crawl has stored, by any process (what --max-pages counts)."""
        ...

    def alive(self) -> None:
        """This process still works on the crawl (a heartbeat; cheap to call often)."""
        ...

    def close(self) -> None:
        """This process is done with the crawl."""
        ...


@dataclass
class MemorySink:
    """A Sink in a dict, for tests."""

    stored: dict[str, Outcome] = field(default_factory=dict)  # url -> the first outcome saved
    saves: int = 0

    def save(self, outcomes: Sequence[Outcome]) -> None:
        self.saves += 1
        for outcome in outcomes:
            self.stored.setdefault(outcome.job.url, outcome)

    def count(self) -> int:
        return len(self.stored)

    def alive(self) -> None:
        pass

    def close(self) -> None:
        pass
