"""The distributed mode's edge: connecting a process to a crawl's shared Redis frontier.

`join` opens the crawl's RedisFrontier (crawler.frontier.redis) for this process, with the shared
robots.txt answers, and wraps it so that a Redis that lost the crawl's data (restarted without
persistence, flushed) is rebuilt from the store, the source of truth (crawler.store.rebuild), by one
worker under a lock, while the others wait for it; then the call that met the loss is made again.
A crawl new to Redis is "rebuilt" the same way: its seeds are all it has.
"""

from __future__ import annotations

import os
import socket
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

from crawler.frontier import Frontier, FrontierLost
from crawler.frontier.robots import SharedRobots
from crawler.settings import Settings
from crawler.store.db import without_password
from crawler.store.rebuild import frontier_of
from crawler.store.sql import Store
from crawler.urls import Scope

if TYPE_CHECKING:  # (redis-py is imported where a crawl uses Redis: 0.25 s of every other start-up)
    import redis

    from crawler.frontier.redis import RedisFrontier

NORMALIZATION = 2  # the URL normalization's version: workers that normalize differently would not dedup
REBUILD_WAIT = 300.0  # seconds a worker waits for another's rebuild before it gives up
CONNECT_TIMEOUT = 5.0


class FrontierUnreachable(Exception):
    """Redis cannot be reached, or is not a Redis the crawl can use; the message is one line."""


def connect(url: str) -> redis.Redis:
    """A client for the Redis at `url`, checked with a PING; FrontierUnreachable if it does not answer."""
    import redis  # (see the imports)

    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=CONNECT_TIMEOUT, health_check_interval=30)
        client.ping()
    except (redis.RedisError, ValueError) as error:
        raise FrontierUnreachable(f"cannot reach the frontier at {without_password(url)}: {error}") from None
    return client


def persistence_warning(client: redis.Redis) -> str | None:
    """A warning when this Redis keeps nothing on disk (its data goes with a restart), or None."""
    import redis  # (see the imports)

    try:
        config = client.config_get("save") | client.config_get("appendonly")
    except redis.RedisError:  # CONFIG disabled (managed Redis): nothing to say
        return None
    if config.get("save") or config.get("appendonly") == "yes":
        return None
    return ("Redis persists nothing (no RDB snapshots, no AOF): if it restarts, the frontier is rebuilt "
            "from the database, which costs time, not pages")


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def join(settings: Settings, store: Store, crawl_id: int, seeds: list[str], scope: Scope
         ) -> tuple[Frontier, SharedRobots]:
    """This process's view of the crawl's shared frontier, and its robots.txt answers."""
    from crawler.frontier.redis import RedisFrontier  # (see the imports)

    assert settings.frontier is not None
    client = connect(settings.frontier)
    warning = persistence_warning(client)
    if warning:
        print(f"crawl: warning: {warning}", file=sys.stderr)
    key = f"crawl:{settings.frontier_key}"
    shared = RedisFrontier(client, key, worker_name(), settings.lease)
    healing = Healing(shared, lambda: rebuild(shared, settings, store, crawl_id, seeds, scope))
    if not shared.exists():
        healing.heal(quiet=True)
    version = shared.norm_version()
    if version not in (None, NORMALIZATION):
        raise FrontierUnreachable(f"crawl {crawl_id} normalizes URLs by version {version}, this crawler by "
                                  f"{NORMALIZATION}: run the same crawler version on every worker")
    limits = settings.limits
    fetch_seconds = limits.timeout * (limits.retries + 1) + limits.backoff * 2 ** limits.retries
    return cast(Frontier, healing), SharedRobots(client, key, worker_name(), fetch_seconds)


def rebuild(shared: RedisFrontier, settings: Settings, store: Store, crawl_id: int, seeds: list[str],
            scope: Scope) -> bool:
    """Load the store's view of the frontier into Redis, unless another worker holds the rebuild lock."""
    with store.engine.connect() as conn:
        rebuilt = frontier_of(conn, crawl_id, seeds, settings, scope)
    limits = settings.limits
    return shared.rebuild(rebuilt.queued, rebuilt.done, limits.per_host, limits.delay, NORMALIZATION)


class Healing:
    """A RedisFrontier whose every call survives the loss of its Redis data (see the module docstring)."""

    def __init__(self, shared: RedisFrontier, rebuild: Callable[[], bool]) -> None:
        self.shared, self._rebuild = shared, rebuild

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self.shared, name)
        if not callable(attribute):
            return attribute

        def call(*args: Any, **kwargs: Any) -> Any:
            try:
                return attribute(*args, **kwargs)
            except FrontierLost:
                self.heal()
                return attribute(*args, **kwargs)

        return call

    def heal(self, quiet: bool = False) -> None:
        """Rebuild the frontier, or wait (bounded) for the worker that does."""
        if not quiet:
            print("crawl: the Redis frontier lost this crawl's data; rebuilding it from the database",
                  file=sys.stderr)
        deadline = time.monotonic() + REBUILD_WAIT
        while not self._rebuild():
            if self.shared.exists():
                return
            if time.monotonic() > deadline:
                raise FrontierUnreachable(f"no worker rebuilt the frontier in {REBUILD_WAIT:.0f} s")
            time.sleep(0.2)
