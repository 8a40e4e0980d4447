"""RedisFrontier: the frontier and the scheduler that every worker of a distributed crawl shares.

Each multi-key change is one Lua script (crawler/frontier/lua/, each prepended with common.lua) doing
bounded work, and every time in it comes from the Redis server's clock (TIME), never a client's. Under
the crawl's key prefix K:

- K:meta      HASH  epoch, per_host, delay (ms), norm version, counters queued / leased / next
- K:q:<host>  LIST  the host's queued jobs, each a 12-byte fingerprint followed by the URL
- K:ready     ZSET  host -> when it may next be claimed (ms): exactly the hosts with queued jobs under
                    their in-flight cap; a claim takes due hosts, one job each per round, and puts each
                    back at now + delay (the Mercator back-queue heap), so politeness is global
- K:inflight  HASH  host -> jobs claimed and not yet released;  K:rest  HASH  host -> resting until (ms)
- K:leases    ZSET  token -> deadline (ms);  K:lease  HASH  token -> owner, host, released, job
- K:seen:<xxxx> HASH the exact dedup: 65,536 buckets keyed by the fingerprint's first 2 bytes, field =
                    its other 10 bytes, value = the URL's depth, or `d` once done. The fingerprint is
                    blake2b-96 of the URL (a collision among 10^9 URLs: p < 10^-11). Small hashes are
                    listpacks; measured (INFO memory, Redis 7.0): the dedup costs 75 B/URL at 100k URLs
                    (mostly the buckets' own overhead), 23 B at 1M, 19 B at 3M, falling to ~16 B as the
                    buckets fill up to 128 entries (8M URLs; past that they turn into hashtables,
                    ~70 B); a queued URL adds its text in its host's list (~45 B for a 40-byte URL).

A claim is a lease `epoch:counter` (the epoch is new with every rebuild, so tokens never repeat); an
ack, a give-back or a renewal from a worker that no longer holds the lease is refused (fencing); a
claim first requeues a bounded number of expired leases. `status` reads queued and leased in one
step: the crawl is finished when both are 0. A script that finds no meta (Redis restarted empty, or
flushed) raises FrontierLost; `rebuild` loads a new state under a lock and writes the meta last.
Not for Redis Cluster: the scripts build their key names from the prefix.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Collection, Iterable, Iterator, Sequence
from itertools import islice
from pathlib import Path
from typing import Any

import redis

from crawler.frontier import Entry, FrontierLost
from crawler.records import Job

LUA = Path(__file__).resolve().parent / "lua"
CHUNK = 500  # entries per script call
REAP_PER_CLAIM = 32  # expired leases a claim requeues first, at most
REBUILD_LOCK_MS = 60_000


def fingerprint(url: str) -> bytes:
    return hashlib.blake2b(url.encode("utf-8", "surrogatepass"), digest_size=12).digest()


def chunks(items: Iterable[Any], size: int = CHUNK) -> Iterator[list[Any]]:
    it = iter(items)
    while chunk := list(islice(it, size)):
        yield chunk


class RedisFrontier:
    """A crawl's frontier in Redis, shared by its workers (see the module docstring)."""

    def __init__(self, client: redis.Redis, key: str, worker: str, lease: float = 60.0) -> None:
        self.client, self.key, self.worker = client, key, worker
        self.lease_ms = int(lease * 1000)
        self.stale = 0  # acks and give-backs refused: leases this worker had lost
        self.wait_hint: float | None = None  # after a claim: seconds until the next host is due
        common = (LUA / "common.lua").read_text()
        self._scripts = {name: client.register_script(common + (LUA / f"{name}.lua").read_text())
                         for name in ("add", "claim", "done", "give_back", "release", "renew", "lower_depth",
                                      "status", "reap")}
        self._load = client.register_script((LUA / "load.lua").read_text())

    def _run(self, name: str, *args: Any) -> Any:
        try:
            return self._scripts[name](args=[self.key, *args])
        except redis.ResponseError as error:
            if str(error).startswith("LOST"):
                raise FrontierLost(str(error)) from None
            raise

    # -- state ----------------------------------------------------------------------------------

    def exists(self) -> bool:
        return bool(self.client.exists(f"{self.key}:meta"))

    def norm_version(self) -> int | None:
        value = self.client.hget(f"{self.key}:meta", "norm")
        return int(value) if value is not None else None

    def rebuild(self, queued: Iterable[Entry], done: Iterable[str], per_host: int, delay: float,
                norm_version: int = 1) -> bool:
        """A new state for the crawl: `done` URLs known as done, `queued` entries queued, a new epoch;
        False (nothing done) if another worker holds the rebuild lock. The meta is written last, so the
        other workers wait (their scripts raise FrontierLost) until the whole state is there."""
        lock = f"{self.key}:rebuild"
        if not self.client.set(lock, self.worker, nx=True, px=REBUILD_LOCK_MS):
            return False
        try:
            self._clear()
            for urls in chunks(done):
                self._load(args=[self.key, len(urls), *map(fingerprint, urls)])
            added = 0
            for entries in chunks(queued):
                flat = [v for url, host, depth in entries for v in (fingerprint(url), url, host, depth)]
                added += int(self._load(args=[self.key, 0, *flat]))
            self.client.hset(f"{self.key}:meta", mapping={
                "epoch": secrets.token_hex(4), "per_host": per_host, "delay": int(delay * 1000),
                "norm": norm_version, "queued": added, "leased": 0, "next": 0})
        finally:
            self.client.delete(lock)
        return True

    def _clear(self) -> None:
        """Whatever is left of an earlier state under the prefix (SCAN, in steps: a rare, one-off walk)."""
        for keys in chunks(self.client.scan_iter(match=f"{self.key}:*", count=1000), 1000):
            doomed = [k for k in keys if k != f"{self.key}:rebuild".encode()]
            if doomed:
                self.client.delete(*doomed)

    def status(self) -> tuple[int, int]:
        """(queued, leased), read in one atomic step."""
        queued, leased = self._run("status")
        return int(queued), int(leased)

    # -- the Frontier Protocol ------------------------------------------------------------------

    def add(self, entries: Iterable[Entry]) -> int:
        added = 0
        for chunk in chunks(entries):
            flat = [v for url, host, depth in chunk for v in (fingerprint(url), url, host, depth)]
            added += int(self._run("add", *flat))
        return added

    def claim(self, n: int, exclude_hosts: Collection[str] = (), per_host: int = 0) -> list[Job]:
        if n <= 0:
            return []
        out = self._run("claim", self.worker, n, self.lease_ms, REAP_PER_CLAIM, per_host, *exclude_hosts)
        due_ms = int(out[0])
        self.wait_hint = None if due_ms < 0 else due_ms / 1000
        return [Job(int(out[i]), out[i + 1].decode("utf-8", "surrogatepass"), int(out[i + 2]),
                    out[i + 3].decode()) for i in range(1, len(out), 4)]

    def done(self, jobs: Sequence[Job], landed: Sequence[Entry] = ()) -> list[Job]:
        """Ack the jobs (fenced); the ones claimed before a rebuild, which are marked done too (their
        pages are stored now: see the Frontier Protocol)."""
        earlier: list[Job] = []
        for chunk in chunks(jobs):
            out = self._run("done", self.worker, len(chunk), *(job.lease for job in chunk))
            self.stale += int(out[0])
            tokens = {token.decode() for token in out[1:]}
            earlier += [job for job in chunk if job.lease in tokens]
        urls = [url for url, _, _ in landed] + [job.url for job in earlier]
        for fps in chunks(map(fingerprint, urls)):
            self._run("done", self.worker, 0, *fps)
        return earlier

    def give_back(self, jobs: Sequence[Job]) -> None:
        for chunk in chunks(jobs):
            self.stale += int(self._run("give_back", self.worker, *(job.lease for job in chunk)))

    def lower_depth(self, found: Sequence[tuple[str, int]]) -> None:
        for chunk in chunks(found):
            self._run("lower_depth", *(v for url, depth in chunk for v in (fingerprint(url), depth)))

    def recover(self) -> int:
        """Requeue every expired lease, CHUNK at a time; how many."""
        total = 0
        while (reaped := int(self._run("reap", CHUNK))) > 0:
            total += reaped
            if reaped < CHUNK:
                break
        return total

    def is_known(self, url: str) -> bool:
        fp = fingerprint(url)
        return bool(self.client.hexists(f"{self.key}:seen:{fp[:2].hex()}", fp[2:]))

    def known(self) -> Iterator[tuple[str, str]]:
        """Nothing: the shared frontier keeps fingerprints, not URLs (--max-pages-per-host counts per worker)."""
        return iter(())

    def pending(self) -> int:
        queued, leased = self.status()
        return queued + leased

    def release(self, fetched: Sequence[tuple[Job, float]]) -> None:
        for chunk in chunks(fetched):
            self._run("release", self.worker, *(v for job, rest in chunk for v in (job.lease, int(rest * 1000))))

    def renew(self, jobs: Collection[Job]) -> list[Job]:
        by_token = {job.lease: job for job in jobs}
        lost: list[Job] = []
        for chunk in chunks(by_token):
            lost += [by_token[token.decode()] for token in self._run("renew", self.worker, self.lease_ms, *chunk)]
        return lost

    def due_in(self) -> float | None:
        return self.wait_hint
