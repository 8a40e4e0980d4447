"""Shared robots.txt answers: each host's robots.txt is fetched once per crawl, by whichever worker asks
first, and read from Redis by every other worker of the crawl.

The first asker takes a lock (SET NX PX, as long as the fetch may take) and stores the answer (status,
error, body) under the crawl's key; the others poll for it, bounded by twice the lock's life, and fetch
it themselves if it never comes (the lock's holder died). A frontier of one process does not share:
its scheduler asks once per origin anyway (see crawler.scheduler).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, cast

from crawler.records import Response

if TYPE_CHECKING:
    import redis

POLL = 0.05  # seconds between two looks for another worker's answer
Fetch = Callable[[], Response]


def unshared(origin: str, fetch: Fetch) -> Response:
    """The answer of a crawl in one process: fetch it."""
    return fetch()


class SharedRobots:
    """robots.txt answers in Redis, one per origin per crawl (see the module docstring)."""

    def __init__(self, client: redis.Redis, key: str, worker: str, fetch_seconds: float) -> None:
        self.client, self.key, self.worker = client, key, worker
        self.lock_ms = int(1000 * fetch_seconds) + 1000

    def __call__(self, origin: str, fetch: Fetch) -> Response:
        key = f"{self.key}:robots:{origin}"
        deadline = time.monotonic() + 2 * self.lock_ms / 1000
        while time.monotonic() < deadline:
            answer = self._read(key, origin)
            if answer is not None:
                return answer
            if self.client.set(key + ":lock", self.worker, nx=True, px=self.lock_ms):
                response = fetch()
                self._write(key, response)
                return response
            time.sleep(POLL)  # (patched under gevent: the other greenlets go on)
        return fetch()

    def _read(self, key: str, origin: str) -> Response | None:
        fields = cast(dict[bytes, bytes], self.client.hgetall(key))
        if not fields:
            return None
        url = origin + "/robots.txt"
        status = fields.get(b"status", b"")
        error = fields.get(b"error", b"")
        return Response(url, url, status=int(status) if status else None, body=fields.get(b"body", b""),
                        error=error.decode() if error else None)

    def _write(self, key: str, response: Response) -> None:
        pipe = self.client.pipeline()
        pipe.hset(key, "status", "" if response.status is None else str(response.status))
        pipe.hset(key, "error", response.error or "")
        pipe.hset(key, "body", response.body)
        pipe.delete(key + ":lock")
        pipe.execute()
