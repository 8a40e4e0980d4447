"""Stats: the figures of `crawl stats` about one crawl, and their human summary.

Read without migrating the database (crawler.store.query.reading). A distributed crawl also shows
its workers: each process's runs row (machine, pid, pages stored, last heartbeat, whether it is live).
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from sqlalchemy import Connection, func, select

from crawler.records import error_kind
from crawler.store.query import active_seconds, find_crawl, reading
from crawler.store.schema import RUNNING, UtcDateTime, frontier, pages, runs
from crawler.store.sql import Run
from crawler.urls import host_of


def stats(db: str, crawl_id: int | None = None) -> dict[str, Any]:
    """`crawl stats` figures for the latest crawl in `db` (or the given one), without migrating it."""
    with reading(db, f"read crawl stats from {db}") as conn:
        return crawl_stats(conn, crawl_id)


def counts(conn: Connection, column: Any, *where: Any) -> dict[Any, int]:
    """{value: count} of `column`, grouped, under `where`."""
    return {
        value: n for value, n in conn.execute(select(column, func.count()).where(*where).group_by(column))
    }


def error_kinds(conn: Connection, crawl_id: int) -> dict[str, int]:
    """{kind: count} (see records.error_kind); most frequent first."""
    kinds: dict[str, int] = {}
    for error, n in counts(
        conn, pages.c.error, pages.c.crawl_id == crawl_id, pages.c.error.is_not(None)
    ).items():
        kind = error_kind(error)
        kinds[kind] = kinds.get(kind, 0) + n
    return dict(sorted(kinds.items(), key=lambda kv: -kv[1]))


def crawl_stats(conn: Connection, crawl_id: int | None) -> dict[str, Any]:
    """id, status, started_at, finished_at, pages, statuses {status: n}, errors {kind: n}, hosts,
    frontier {state: n}, duration_s (the time its runs ran: stopped time is not counted) and pages_per_s,
    its runs (live or not) and when one was last alive."""
    crawl = find_crawl(conn, crawl_id)
    of_crawl = pages.c.crawl_id == crawl.id
    n_pages = conn.execute(select(func.count()).select_from(pages).where(of_crawl)).scalar_one()
    joined = pages.join(frontier, (frontier.c.crawl_id == pages.c.crawl_id) & (frontier.c.url == pages.c.url))
    hosts = select(func.count(frontier.c.host.distinct())).select_from(joined).where(of_crawl)
    ran = workers(conn, crawl.id)
    duration = ran_for(conn, crawl.id)
    if duration is None:  # (no runs rows: a crawl from before they were kept)
        end = crawl.finished_at or dt.datetime.now(dt.UTC)
        duration = max((end - crawl.started_at).total_seconds(), 0.0)
    return {
        "id": crawl.id,
        "status": crawl.status,
        "started_at": crawl.started_at,
        "finished_at": crawl.finished_at,
        "pages": n_pages,
        "statuses": dict(sorted(counts(conn, pages.c.status, of_crawl, pages.c.status.is_not(None)).items())),
        "errors": error_kinds(conn, crawl.id),
        "hosts": conn.execute(hosts).scalar_one() or hosts_of_pages(conn, crawl.id),
        "frontier": counts(conn, frontier.c.state, frontier.c.crawl_id == crawl.id),
        "duration_s": round(duration, 3),
        "pages_per_s": round(n_pages / duration, 2) if duration > 0 else 0.0,
        "workers": ran if crawl_is_shared(crawl.settings) else [],
        "live_runs": sum(w["live"] for w in ran),
        "last_alive": max((w["alive_at"] for w in ran), default=None),
    }


def ran_for(conn: Connection, crawl_id: int) -> float | None:
    """Seconds during which a process worked on the crawl (its runs' spans, overlaps once: time spent
    stopped between runs is not counted); None if it has no runs rows."""
    ended = func.coalesce(runs.c.ended_at, runs.c.alive_at, type_=UtcDateTime)
    spans = list(conn.execute(select(runs.c.crawl_id, runs.c.started_at, ended).where(runs.c.crawl_id == crawl_id)))
    return active_seconds(spans).get(crawl_id) if spans else None


def crawl_is_shared(settings_json: str) -> bool:
    """Whether the crawl's workers share a frontier (it was started with --frontier)."""
    return bool(json.loads(settings_json).get("frontier_key"))


def hosts_of_pages(conn: Connection, crawl_id: int) -> int:
    """Distinct hosts of the crawl's pages (a shared frontier keeps no frontier rows to count them by)."""
    return len({host_of(url) for (url,) in conn.execute(select(pages.c.url).where(pages.c.crawl_id == crawl_id))})


def workers(conn: Connection, crawl_id: int) -> list[dict[str, Any]]:
    """Each process that worked on the crawl: machine, pid, pages stored (as of its last heartbeat),
    last heartbeat, and whether it is live (not ended, and, on this machine, its process exists;
    elsewhere its heartbeat is fresh)."""
    at = dt.datetime.now(dt.UTC)
    c = runs.c
    query = select(c.id, c.host, c.pid, c.pages, c.alive_at, c.ended_at).where(c.crawl_id == crawl_id).order_by(c.id)
    return [
        {"host": r.host, "pid": r.pid, "pages": r.pages, "alive_at": r.alive_at,
         "live": r.ended_at is None and Run(r.id, r.host, r.pid, r.alive_at).is_live(at)}
        for r in conn.execute(query)
    ]




def format_stats(figures: dict[str, Any]) -> str:
    """The human summary of `crawl stats`."""

    def when(value: dt.datetime | None) -> str:
        return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if value else "-"

    def listing(mapping: dict[Any, int]) -> str:
        return ", ".join(f"{key}: {n}" for key, n in mapping.items()) or "none"

    f = figures
    status = f["status"]
    if status == RUNNING and not f.get("live_runs") and f.get("last_alive"):
        status = f"running, but no process works on it: last alive {when(f['last_alive'])}; `crawl` resumes it"
    lines = [
        f"crawl     {f['id']} ({status})",
        f"started   {when(f['started_at'])}",
        f"finished  {when(f['finished_at'])}",
        f"duration  {f['duration_s']:.1f} s",
        f"pages     {f['pages']} ({f['pages_per_s']:.1f} pages/s)",
        f"hosts     {f['hosts']}",
        f"statuses  {listing(f['statuses'])}",
        f"errors    {listing(f['errors'])}",
        f"frontier  {listing(f['frontier'])}",
    ]
    live = [w for w in f.get("workers", []) if w["live"]]
    if f.get("workers"):
        lines.append(f"workers   {len(live)} live of {len(f['workers'])}")
        lines += [f"  {w['host']}:{w['pid']}  {w['pages']} pages  last seen {when(w['alive_at'])}"
                  f"{'' if w['live'] else '  (gone)'}" for w in f["workers"]]
    return "\n".join(lines)
