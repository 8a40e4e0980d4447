"""Data out through the CLI: `crawl crawls`, `--crawl ID`, `crawl export` (JSONL, CSV, --fields, -o) on
SQLite and PostgreSQL, `crawl sql` streaming (jsonl, a capped table) and Ctrl-C during a long query."""

from __future__ import annotations

import csv
import io
import json
import signal
import sqlite3
import time
from pathlib import Path

import psutil
import pytest
from conftest import run_cli
from crawl_jobs import Job, wait_for
from sqlalchemy import create_engine, text

from crawler.export import PAGE_FIELDS, with_links

pytest_plugins = ["conftest_db"]

SITE = ("--pages", "30", "--fanout", "4")
QUIET = ("--quiet", "--parse-workers", "1")
SAME_ON_BOTH = ["url", "final_url", "depth", "status", "error", "content_type", "length", "content_hash",
                "encoding", "title", "description", "text", "links"]


def crawl_twice(url: str, db: str) -> None:
    """Crawl 1: the whole site (30 pages); crawl 2: 5 pages of it, into the same database."""
    for pages in ("0", "5"):
        result = run_cli(url, "--db", db, "--max-pages", pages, *QUIET)
        assert result.returncode == 0, result.stderr


@pytest.fixture(scope="module")
def two_crawls(site_factory, tmp_path_factory) -> str:  # type: ignore[no-untyped-def]
    db = str(tmp_path_factory.mktemp("export") / "crawl.db")
    crawl_twice(site_factory(*SITE).url, db)
    return db


def jsonl(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines()]


def cli_ok(*args: str) -> str:
    result = run_cli(*args)
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    return result.stdout


def test_crawls_lists_each_crawl(two_crawls: str) -> None:
    listed = json.loads(cli_ok("crawls", "--db", two_crawls, "--format", "json"))
    assert [(c["id"], c["status"], c["pages"], c["errors"]) for c in listed] == [
        (1, "finished", 30, 0), (2, "finished", 5, 0)]
    assert set(listed[0]) == {"id", "status", "started_at", "finished_at", "active_s", "pages", "errors", "seeds"}
    assert listed[0]["seeds"][0].startswith("http://127.0.0.1:") and 0 < listed[0]["active_s"] < 60
    table = cli_ok("crawls", "--db", two_crawls).splitlines()
    assert table[0].split() == ["id", "status", "started_at", "finished_at", "active_s", "pages", "errors",
                                "seeds"] and table[-1] == "(2 rows)"
    header, *rows = csv.reader(io.StringIO(cli_ok("crawls", "--db", two_crawls, "--format", "csv")))
    assert header[0] == "id" and [r[5] for r in rows] == ["30", "5"]


def test_active_seconds_sum_the_runs_not_the_wall_time(tmp_path: Path, two_crawls: str) -> None:
    """A crawl begun a day ago whose two runs lasted 10 s (ended) and 5 s (died: to its last heartbeat)."""
    db = tmp_path / "copy.db"
    with sqlite3.connect(two_crawls) as src, sqlite3.connect(db) as dst:
        src.backup(dst)
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE crawls SET started_at = '2026-01-01 00:00:00.000000' WHERE id = 1")
        conn.execute("DELETE FROM runs WHERE crawl_id = 1")
        conn.executemany("INSERT INTO runs (crawl_id, host, pid, started_at, alive_at, ended_at, pages) "
                         "VALUES (1, 'h', 1, ?, ?, ?, 0)", [
                             ("2026-01-01 00:00:00.000000", "2026-01-01 00:00:09.000000", "2026-01-01 00:00:10.000000"),
                             ("2026-01-02 00:00:00.000000", "2026-01-02 00:00:05.000000", None)])
    listed = json.loads(cli_ok("crawls", "--db", str(db), "--format", "json"))
    assert listed[0]["active_s"] == 15.0


def test_stats_and_export_take_a_crawl_id(two_crawls: str) -> None:
    assert "pages     5 " in cli_ok("stats", "--db", two_crawls)
    assert "pages     30 " in cli_ok("stats", "--db", two_crawls, "--crawl", "1")
    assert {r["crawl_id"] for r in jsonl(cli_ok("export", "--db", two_crawls))} == {2}
    assert len(jsonl(cli_ok("export", "--db", two_crawls, "--crawl", "1"))) == 30
    result = run_cli("stats", "--db", two_crawls, "--crawl", "9")
    assert result.returncode == 2 and "crawl: no crawl 9 in this database" in result.stderr


def test_export_jsonl_has_every_column_and_the_links(two_crawls: str) -> None:
    records = jsonl(cli_ok("export", "--db", two_crawls, "--crawl", "1"))
    with sqlite3.connect(two_crawls) as conn:
        conn.row_factory = sqlite3.Row
        [page] = conn.execute("SELECT * FROM pages WHERE crawl_id = 1 ORDER BY id LIMIT 1").fetchall()
        page_links = conn.execute("SELECT url, anchor FROM links WHERE page_id = ? ORDER BY id", (page["id"],))
        expected_links = [dict(link) for link in page_links]
    first = records[0]
    assert list(first) == [*PAGE_FIELDS, "links"] and set(PAGE_FIELDS) == set(page.keys())  # (model order:
    # a migrated SQLite table has its added columns last)
    assert (first["url"], first["title"], first["text"]) == (page["url"], page["title"], page["text"])
    assert first["links"] == expected_links and len(expected_links) >= 4
    assert [r["id"] for r in records] == sorted(r["id"] for r in records)


def test_export_csv_fields_and_output_file(two_crawls: str, tmp_path: Path) -> None:
    out = tmp_path / "pages.csv"
    result = run_cli("export", "--db", two_crawls, "--crawl", "1", "--format", "csv",
                     "--fields", "url,title,text", "-o", str(out))
    assert result.returncode == 0 and result.stdout == "" and result.stderr == "", result.stderr
    raw = out.read_bytes()
    assert raw.count(b"\r\n") >= 31  # RFC 4180 line ends
    header, *rows = csv.reader(io.StringIO(raw.decode(), newline=""))
    assert header == ["url", "title", "text"] and len(rows) == 30
    assert all(r[1].startswith("Page ") and r[2] for r in rows)


def test_export_refuses_an_unknown_field(two_crawls: str) -> None:
    result = run_cli("export", "--db", two_crawls, "--fields", "url,nope")
    assert result.returncode == 2 and "crawl: unknown field 'nope'" in result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""


def test_export_is_the_same_from_sqlite_and_postgresql(site_factory, pg_db: str, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                       two_crawls: str) -> None:
    url = site_factory(*SITE).url
    crawl_twice(url, pg_db)
    fields = ",".join(SAME_ON_BOTH)

    def by_url(db: str) -> dict[str, dict]:
        return {r["url"]: r for r in jsonl(cli_ok("export", "--db", db, "--crawl", "1", "--fields", fields))}

    from_pg, from_sqlite = by_url(pg_db), by_url(two_crawls)
    assert len(from_pg) == 30 and from_pg == from_sqlite
    listed = json.loads(cli_ok("crawls", "--db", pg_db, "--format", "json"))
    assert [(c["id"], c["pages"]) for c in listed] == [(1, 30), (2, 5)] and listed[0]["active_s"] > 0
    assert "pages     30 " in cli_ok("stats", "--db", pg_db, "--crawl", "1")


def test_with_links_merges_two_ordered_streams() -> None:
    pages = [(1, "a", 1), (3, "b", 3), (4, "c", 4)]
    page_links = [(1, "x", "X"), (1, "y", None), (2, "gone", ""), (4, "z", "Z")]
    assert list(with_links(pages, page_links, 2)) == [
        [1, "a", [{"url": "x", "anchor": "X"}, {"url": "y", "anchor": None}]],
        [3, "b", []], [4, "c", [{"url": "z", "anchor": "Z"}]]]


COUNT_TO = "WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c WHERE n < {}) SELECT n FROM c"


def test_sql_jsonl_streams_every_row_and_the_table_is_capped(two_crawls: str) -> None:
    rows = jsonl(cli_ok("sql", COUNT_TO.format(1500), "--db", two_crawls, "--format", "jsonl"))
    assert rows[0] == {"n": 1} and len(rows) == 1500
    table = cli_ok("sql", COUNT_TO.format(1500), "--db", two_crawls).splitlines()
    assert len(table) == 2 + 1000 + 1 and table[-1].startswith("(the first 1000 rows; use --format csv")
    assert len(json.loads(cli_ok("sql", COUNT_TO.format(1500), "--db", two_crawls, "--format", "json"))) == 1500


def interrupt_when(job: Job, started: object, what: str) -> float:
    """SIGINT the job once `started()` holds; seconds from the signal to its exit."""
    wait_for(started, what, job, timeout=30)  # type: ignore[arg-type]
    sent = time.monotonic()
    job.proc.send_signal(signal.SIGINT)
    job.wait(timeout=10)
    return time.monotonic() - sent


def test_ctrl_c_stops_a_long_sqlite_query(two_crawls: str) -> None:
    job = Job("sql", "SELECT count(*) FROM (" + COUNT_TO.format(10**12) + ")", "--db", two_crawls)
    process = psutil.Process(job.proc.pid)

    def querying() -> bool:  # the file is open and the process is busy computing
        return any(f.path == two_crawls for f in process.open_files()) and process.cpu_percent(0.05) > 0

    took = interrupt_when(job, querying, "the query running")
    assert job.proc.returncode == 130 and took < 1.5, (took, job.stderr)
    assert job.stderr == "crawl: interrupted\n"


def test_ctrl_c_cancels_a_long_postgres_query(pg_db: str) -> None:
    engine = create_engine(pg_db)
    marker = "SELECT pg_sleep(60) AS crawler_cancel_test"

    def running() -> list[tuple]:
        with engine.connect() as conn:
            sql = "SELECT pid FROM pg_stat_activity WHERE query = :q AND state = 'active'"
            return list(conn.execute(text(sql), {"q": marker}))

    try:
        job = Job("sql", marker, "--db", pg_db)
        took = interrupt_when(job, lambda: bool(running()), "the query on the server")
        assert job.proc.returncode == 130 and took < 5, (took, job.stderr)
        assert job.stderr == "crawl: interrupted\n" and not running()
    finally:
        engine.dispose()
