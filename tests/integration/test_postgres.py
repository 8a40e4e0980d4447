"""The crawl into PostgreSQL, end to end through the CLI (`--db postgresql+psycopg://...`): the same
tables and the same promises as on SQLite. Each test gets a fresh schema (conftest_db's pg_db)."""

from __future__ import annotations

import json
import signal
from collections.abc import Callable

import pytest
from conftest import Site, run_cli
from crawl_jobs import Job, assert_gone, wait_for
from sqlalchemy import create_engine, text

from crawler.testsite import path_of, reachable

pytest_plugins = ["conftest_db"]

PAGES, FANOUT = 300, 8
FAST = ("--concurrency", "20", "--per-host", "20", "--parse-workers", "2", "--quiet")


def rows(db: str, sql: str) -> list[tuple]:
    engine = create_engine(db)
    try:
        with engine.connect() as conn:
            return [tuple(row) for row in conn.execute(text(sql))]
    finally:
        engine.dispose()


def assert_complete(db: str, site: Site) -> None:
    """Every reachable page once, every frontier row done and matched by its page, the crawl finished."""
    expected = {site.url.rstrip("/") + path_of(i) for i in reachable(PAGES, FANOUT)}
    urls = [url for (url,) in rows(db, "SELECT url FROM pages")]
    assert len(urls) == len(expected) and set(urls) == expected
    assert rows(db, "SELECT state, count(*) FROM frontier GROUP BY state") == [("done", len(expected))]
    assert rows(db, "SELECT count(*) FROM pages WHERE title IS NOT NULL AND NOT EXISTS "
                    "(SELECT 1 FROM links WHERE links.page_id = pages.id)") == [(0,)]
    assert rows(db, "SELECT status FROM crawls") == [("finished",)]


def stored(db: str, at_least: int) -> Callable[[], bool]:
    def ready() -> bool:
        try:
            return rows(db, "SELECT count(*) FROM pages")[0][0] >= at_least
        except Exception:  # noqa: BLE001 (the tables don't exist until the crawl has migrated)
            return False

    return ready


@pytest.fixture
def site(site_factory: Callable[..., Site]) -> Site:
    return site_factory("--pages", str(PAGES), "--fanout", str(FANOUT), "--size", "500")


def test_a_crawl_into_postgresql_then_sql_and_stats(site: Site, pg_db: str, engine: str) -> None:
    result = run_cli(site.url, "--db", pg_db, "--engine", engine, *FAST)
    assert result.returncode == 0, result.stderr
    assert_complete(pg_db, site)
    answer = run_cli("sql", "SELECT count(*) AS n FROM pages WHERE status = 200", "--db", pg_db, "--format", "json")
    assert answer.returncode == 0 and json.loads(answer.stdout) == [{"n": len(reachable(PAGES, FANOUT))}]
    refused = run_cli("sql", "DELETE FROM pages", "--db", pg_db)
    assert refused.returncode != 0 and refused.stderr.startswith("crawl: ") and "Traceback" not in refused.stderr
    stats = run_cli("stats", "--db", pg_db)
    assert stats.returncode == 0 and "finished" in stats.stdout, stats.stdout


def test_a_killed_crawl_resumes_to_a_complete_one(site: Site, pg_db: str) -> None:
    """SIGKILL of the whole process group mid-crawl, then `crawl --db URL` on the other engine."""
    job = Job(site.url, "--db", pg_db, "--engine", "gevent", *FAST)
    wait_for(stored(pg_db, 50), "50 pages", job)  # (plus up to a commit: well short of the 300)
    descendants = job.descendants()
    job.signal(signal.SIGKILL, group=True)
    assert job.wait(10) == -signal.SIGKILL
    assert_gone(descendants)
    assert rows(pg_db, "SELECT count(*) - count(DISTINCT url) FROM pages") == [(0,)]
    resumed = Job("--db", pg_db, "--engine", "threads", "--quiet")
    assert resumed.wait() == 0, resumed.stderr
    assert_complete(pg_db, site)


def test_the_database_password_is_never_stored_nor_printed(site: Site, pg_db: str) -> None:
    """A password in --db stays on the command line: masked in crawls.settings and in the messages."""
    secret = pg_db.replace("postgres@", "postgres:s3cret-pw@")  # (trust auth: any password is accepted)
    result = run_cli(site.url, "--db", secret, "--quiet", "--max-pages", "2")
    assert result.returncode == 0, result.stderr
    engine = create_engine(pg_db)
    with engine.connect() as conn:
        saved = conn.execute(text("SELECT settings FROM crawls")).scalar_one()
    engine.dispose()
    assert "s3cret-pw" not in saved and "postgres:***@" in json.loads(saved)["db"]
    resumed = run_cli("--db", secret)
    assert resumed.returncode == 2 and "s3cret-pw" not in resumed.stderr + resumed.stdout
