"""Read-only SQL (`crawl sql`), its output formats, and `crawl stats`, on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import ROOT

from crawler.records import Job, Link, Outcome, Page, Response
from crawler.store.query import QueryError, format_rows, run_readonly
from crawler.store.schema import runs
from crawler.store.sql import open_store
from crawler.store.stats import format_stats, stats

pytest_plugins = ["conftest_db"]

LONG_TEXT = "word " * 100


def fill(db: str) -> str:
    """A finished crawl of three pages (one failed, one with a long text), the first with two links."""
    with open_store(db) as store:
        crawl_id = store.start_crawl(["http://a.test/"], "{}")
        fr = store.frontier(crawl_id)
        fr.add((f"http://a.test/{i}", "a.test", 0) for i in range(3))
        one, two, three = fr.claim(3)
        links = [Link("http://a.test/x", 'x, with "quotes"'), Link("http://b.test/", "b\nnewline")]
        store.pages(crawl_id).save([
            Outcome(one, response(one, 200), Page("One", None, "short", links, "utf-8")),
            Outcome(two, response(two, 200), Page("Two", "d", LONG_TEXT, [], "utf-8")),
            Outcome(three, Response(three.url, three.url, None, error="timeout: 30 s"), None),
        ])  # fmt: skip
        fr.done([one, two, three])
        store.finish_crawl(crawl_id, "finished")
    return db


def response(job: Job, status: int) -> Response:
    return Response(job.url, job.url, status, {"content-type": "text/html"}, b"<html>", elapsed_ms=3,
                    fetched_at=1_700_000_000.0)  # fmt: skip


@pytest.fixture
def db(any_db: str) -> str:
    return fill(any_db)


@pytest.fixture
def sqlite_crawl(sqlite_db: str) -> str:
    return fill(sqlite_db)


def page_count(db: str) -> int:
    return run_readonly(db, "SELECT count(*) FROM pages")[1][0][0]


def test_select_returns_columns_and_rows(db: str) -> None:
    columns, rows = run_readonly(db, "SELECT url, status FROM pages ORDER BY url")
    assert columns == ["url", "status"]
    assert rows == [("http://a.test/0", 200), ("http://a.test/1", 200), ("http://a.test/2", None)]


@pytest.mark.parametrize(
    "sql",
    [
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3) SELECT count(*) FROM n",
        "-- a comment\n/* another */ SELECT count(*) FROM links",
        "SELECT count(*) FROM pages;",
        "VALUES (1)",
    ],
)
def test_reading_statements_run(db: str, sql: str) -> None:
    assert len(run_readonly(db, sql)[1]) == 1


@pytest.mark.parametrize("sql", ["PRAGMA table_info(pages)", "PRAGMA journal_mode", "PRAGMA user_version",
                                 "EXPLAIN QUERY PLAN SELECT * FROM pages WHERE url = 'x'"])  # fmt: skip
def test_sqlite_introspection_runs(sqlite_crawl: str, sql: str) -> None:
    assert run_readonly(sqlite_crawl, sql)[1]


@pytest.mark.parametrize("sql", [
    "SELECT name, type, pk FROM pragma_table_info('pages')",
    "SELECT m.name, c.name FROM sqlite_master AS m JOIN pragma_table_info(m.name) AS c WHERE m.type = 'table'",
    "SELECT * FROM main.pragma_table_xinfo('pages')",
    "SELECT * FROM pragma_index_list('pages')",
    "SELECT * FROM pragma_foreign_key_list('links')",
    "SELECT * FROM pragma_journal_mode",
    "SELECT * FROM pragma_table_info('pages_fts')",
])  # fmt: skip
def test_sqlite_table_valued_pragmas_are_reads(sqlite_crawl: str, sql: str) -> None:
    """A PRAGMA function opens its virtual table (SQLite asks the authorizer for UPDATE of
    sqlite_master to do so); it reads, and runs."""
    assert run_readonly(sqlite_crawl, sql)[1]


WRITES = [
    ("DELETE FROM pages", "DELETE"),
    ("UPDATE pages SET status = 500", "UPDATE"),
    (
        "INSERT INTO crawls (started_at, status, seeds, settings) VALUES ('2020-01-01', 'x', '[]', '{}')",
        "INSERT",
    ),
    ("DROP TABLE links", "DROP"),
    ("CREATE TABLE x (a INTEGER)", "CREATE"),
    ("WITH x AS (SELECT 1) DELETE FROM pages", "DELETE"),
    ("WITH x AS (SELECT 1) UPDATE pages SET status = 1", "UPDATE"),
    ("SELECT 1; DELETE FROM pages", "one statement"),
    ("SELECT 1; COMMIT; DELETE FROM pages", "one statement"),
    ("/* hidden */ DELETE FROM pages", "DELETE"),
    ("VACUUM", "VACUUM"),
    ("BEGIN", "BEGIN"),
]
SQLITE_WRITES = [
    ("ATTACH DATABASE 'other.db' AS other", "ATTACH"),
    ("DETACH DATABASE main", "DETACH"),
    ("PRAGMA journal_mode = DELETE", "PRAGMA journal_mode=DELETE"),
    ("PRAGMA user_version = 5", "PRAGMA user_version=5"),
    ("PRAGMA wal_checkpoint", "PRAGMA wal_checkpoint"),
    ("SELECT * FROM pragma_optimize", "PRAGMA optimize"),
    ("PRAGMA main.user_version = 7", "PRAGMA user_version=7"),
    ("VACUUM INTO 'copy.db'", "VACUUM"),
    ("REPLACE INTO crawls (id, started_at, status, seeds, settings) VALUES (1, 'x', 'x', '', '')", "REPLACE"),
    ("EXPLAIN DELETE FROM pages", "DELETE"),
]


@pytest.mark.parametrize(("sql", "word"), WRITES)
def test_writes_are_refused(db: str, sql: str, word: str) -> None:
    before = page_count(db)
    with pytest.raises(QueryError, match="^refused: ") as caught:
        run_readonly(db, sql)
    assert word in str(caught.value) and "\n" not in str(caught.value)
    assert page_count(db) == before == 3
    assert run_readonly(db, "SELECT count(*) FROM links")[1] == [(2,)]


@pytest.mark.parametrize(("sql", "word"), SQLITE_WRITES)
def test_sqlite_writes_are_refused(
    sqlite_crawl: str, sql: str, word: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(Path(sqlite_crawl).parent)
    with pytest.raises(QueryError, match="^refused: ") as caught:
        run_readonly(sqlite_crawl, sql)
    assert word in str(caught.value)
    assert page_count(sqlite_crawl) == 3
    assert run_readonly(sqlite_crawl, "PRAGMA journal_mode")[1] == [("wal",)]
    assert (
        sorted(p.name for p in Path(sqlite_crawl).parent.iterdir() if not p.name.startswith("crawl.db")) == []
    )


@pytest.mark.parametrize("sql", [
    "SELECT fts3_tokenizer('simple')",  # a native pointer out of the process
    "SELECT FTS3_TOKENIZER('simple', x'4141414141414141')",  # and one in
    "SELECT url FROM pages WHERE length(fts3_tokenizer('porter')) > 0",
    "SELECT load_extension('/nonexistent/evil.so')",
])  # fmt: skip
def test_sqlite_functions_that_reach_outside_are_refused(sqlite_crawl: str, sql: str) -> None:
    with pytest.raises(QueryError, match=r"^refused: (?i:fts3_tokenizer|load_extension)\(\) reaches outside"):
        run_readonly(sqlite_crawl, sql)


def test_sqlite_schema_is_not_trusted(sqlite_crawl: str) -> None:
    """A hostile file's views and triggers may call only the functions SQLite marks innocuous."""
    assert run_readonly(sqlite_crawl, "PRAGMA trusted_schema")[1] == [(0,)]


def test_sql_errors(db: str) -> None:
    with pytest.raises(QueryError, match="^SQL error: .*nope"):
        run_readonly(db, "SELECT * FROM nope")
    with pytest.raises(QueryError, match="^empty query$"):
        run_readonly(db, "  ")


def test_missing_or_foreign_files(tmp_path: Path) -> None:
    with pytest.raises(QueryError, match="^no database at "):
        run_readonly(str(tmp_path / "none.db"), "SELECT 1")
    assert not (tmp_path / "none.db").exists()
    (tmp_path / "junk.db").write_bytes(b"not sqlite at all " * 200)
    with pytest.raises(QueryError, match="is not a SQLite database$"):
        run_readonly(str(tmp_path / "junk.db"), "SELECT * FROM pages")


# --- a database the user may only read ------------------------------------------------------------


def unprivileged(*command: str) -> subprocess.CompletedProcess[str]:
    """`command` run where file permissions bind. Tests run as root here, whom a 0555 directory or a
    0444 file does not stop; setpriv drops the capabilities that let root ignore them (DAC override,
    DAC read-search, fowner) from the bounding set, so the process is a user that owns the files and
    may not write where their mode says it may not. Any other user runs `command` as it is."""
    prefix = []
    if os.geteuid() == 0:
        if shutil.which("setpriv") is None:
            pytest.skip("as root, setpriv is needed to make permissions bind")
        prefix = ["setpriv", "--bounding-set=-dac_override,-dac_read_search,-fowner"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRAWL_")}
    return subprocess.run([*prefix, *command], capture_output=True, text=True, timeout=60, cwd=ROOT, env=env,
                          check=False)  # fmt: skip


def crawl_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return unprivileged(sys.executable, "-m", "crawler", *args)


@pytest.fixture
def read_only_dir(sqlite_crawl: str) -> Iterator[Path]:
    """A closed crawl (WAL mode, no -wal or -shm file left) in a directory made 0555."""
    folder = Path(sqlite_crawl).parent
    assert sorted(p.name for p in folder.iterdir()) == ["crawl.db"]
    folder.chmod(0o555)
    probe = unprivileged(sys.executable, "-c", f"open({str(folder / 'probe')!r}, 'w')")
    assert probe.returncode != 0 and "Permission denied" in probe.stderr  # the simulation holds
    yield folder
    folder.chmod(0o755)


def test_sql_and_stats_read_a_database_in_a_read_only_directory(read_only_dir: Path) -> None:
    db = str(read_only_dir / "crawl.db")
    query = crawl_cli("sql", "SELECT count(*) AS n FROM pages", "--db", db, "--format", "csv")
    assert (query.returncode, query.stdout, query.stderr) == (0, "n\n3\n", "")
    for command in (["stats"], ["crawls"], ["search", "word"], ["export", "--fields", "url"]):
        result = crawl_cli(*command, "--db", db)
        assert result.returncode == 0 and result.stderr == "", (command, result.stderr)
    assert "pages     3" in crawl_cli("stats", "--db", db).stdout
    assert sorted(p.name for p in read_only_dir.iterdir()) == ["crawl.db"]


def test_a_read_only_file_in_rollback_journal_mode_is_read(sqlite_crawl: str) -> None:
    """A 0444 file (a copy from elsewhere, in SQLite's default journal mode): reading it changes
    nothing, not even its journal mode."""
    with sqlite3.connect(sqlite_crawl) as conn:
        conn.execute("PRAGMA journal_mode = DELETE")
    before = Path(sqlite_crawl).read_bytes()
    Path(sqlite_crawl).chmod(0o444)
    for command in (["stats"], ["crawls"], ["sql", "SELECT count(*) FROM links"]):
        result = crawl_cli(*command, "--db", sqlite_crawl)
        assert result.returncode == 0 and result.stderr == "", (command, result.stderr)
    assert Path(sqlite_crawl).read_bytes() == before


def test_commits_a_read_only_directory_hides_are_one_line(sqlite_crawl: str) -> None:
    """A -wal file with commits but no -shm (its writer died) in a directory the user cannot write:
    SQLite cannot read those commits, and says so in one line."""
    folder = Path(sqlite_crawl).parent / "left"
    folder.mkdir()
    conn = sqlite3.connect(sqlite_crawl, isolation_level=None)
    conn.execute("PRAGMA wal_autocheckpoint = 0")
    conn.execute("DELETE FROM links")
    for name in ("crawl.db", "crawl.db-wal"):  # as a writer that died leaves them, less the -shm
        shutil.copy(Path(sqlite_crawl).parent / name, folder / name)
    conn.close()
    folder.chmod(0o555)
    try:
        for command in (["sql", "SELECT count(*) FROM links"], ["stats"]):
            result = crawl_cli(*command, "--db", str(folder / "crawl.db"))
            assert result.returncode == 2 and len(result.stderr.splitlines()) == 1, result.stderr
            assert "its -wal file need a -shm file" in result.stderr and "Traceback" not in result.stderr
    finally:
        folder.chmod(0o755)


# --- formats -------------------------------------------------------------------------------------

COLUMNS = ["id", "url", "text", "blob", "missing"]
ROWS = [
    (1, "http://a.test/0", 'a "quoted", comma\nand newline', b"\x00\xff", None),
    (22, "u", LONG_TEXT, b"", None),
]


def test_csv_parses_back() -> None:
    parsed = list(csv.reader(io.StringIO(format_rows(COLUMNS, ROWS, "csv"))))
    assert parsed == [COLUMNS, ["1", "http://a.test/0", 'a "quoted", comma\nand newline', "00ff", ""],
                      ["22", "u", LONG_TEXT, "", ""]]  # fmt: skip


def test_json_parses_back() -> None:
    assert json.loads(format_rows(COLUMNS, ROWS, "json")) == [
        {
            "id": 1,
            "url": "http://a.test/0",
            "text": 'a "quoted", comma\nand newline',
            "blob": "00ff",
            "missing": None,
        },
        {"id": 22, "url": "u", "text": LONG_TEXT, "blob": "", "missing": None},
    ]
    assert json.loads(format_rows(["a", "a"], [(1, 2)], "json")) == [{"a": 1, "a_2": 2}]


def refuse_constant(name: str) -> None:
    raise AssertionError(f"not JSON: {name}")


def test_json_has_no_infinity_or_nan(db: str) -> None:
    """Float infinities (SQLite's 1e999, PostgreSQL's 'infinity') and NaN: JSON has none, so they are null
    (as JavaScript writes them)."""
    pg = "postgresql" in db
    sql = ("SELECT 'infinity'::float8 AS big, '-infinity'::float8 AS small, 'NaN'::float8 AS nan, 0.5 AS half"
           if pg else "SELECT 1e999 AS big, -1e999 AS small, NULL AS nan, 0.5 AS half")
    for fmt, wrap in (("json", "{}"), ("jsonl", "[{}]")):
        columns, rows = run_readonly(db, sql)
        out = wrap.format(format_rows(columns, rows, fmt).strip())
        assert json.loads(out, parse_constant=refuse_constant) == [{"big": None, "small": None, "nan": None,
                                                                     "half": 0.5}]


def test_table_aligns_and_cuts_long_cells() -> None:
    lines = format_rows(COLUMNS, ROWS, "table").splitlines()
    assert lines[0].split() == COLUMNS
    assert set(lines[1].replace(" ", "")) == {"-"}
    assert lines[2].startswith(" 1  http://a.test/0") and "and newline" in lines[2]
    assert lines[3].startswith("22  u") and "…" in lines[3] and len(lines[3]) < 120
    assert lines[-1] == "(2 rows)"
    assert format_rows(["n"], [], "table").splitlines()[-1] == "(0 rows)"


def test_query_output_formats_round_trip(db: str) -> None:
    columns, rows = run_readonly(db, "SELECT url, status, fetched_at FROM pages ORDER BY url")
    as_json = json.loads(format_rows(columns, rows, "json"))
    assert [r["status"] for r in as_json] == [200, 200, None]
    assert as_json[0]["fetched_at"].startswith("2023-11-14")
    header, *lines = csv.reader(io.StringIO(format_rows(columns, rows, "csv")))
    assert header == ["url", "status", "fetched_at"] and len(lines) == 3


# --- stats ---------------------------------------------------------------------------------------


def test_stats_of_the_latest_crawl(db: str) -> None:
    figures = stats(db)
    assert (figures["pages"], figures["statuses"], figures["errors"], figures["hosts"]) == (
        3, {200: 2}, {"timeout": 1}, 1)  # fmt: skip
    text = format_stats(figures)
    assert "pages     3" in text and "200: 2" in text and "timeout: 1" in text and "(finished)" in text


def test_stats_count_the_time_the_crawl_ran_and_name_a_crash(any_db: str) -> None:
    """Two runs of 10 s an hour apart, and a third overlapping the second (another worker): 30 s, not an
    hour; the crawl's row says running, but its last run died without ending: stats says when it was
    last alive, not that it runs."""
    with open_store(any_db) as store:
        crawl_id = store.start_crawl(["http://a.test/"], "{}")
        t0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
        spans = [(t0, t0 + dt.timedelta(seconds=10), t0 + dt.timedelta(seconds=10)),
                 (t0 + dt.timedelta(hours=1), t0 + dt.timedelta(hours=1, seconds=15), None),
                 (t0 + dt.timedelta(hours=1, seconds=5), t0 + dt.timedelta(hours=1, seconds=20), None)]
        for started, alive, ended in spans:
            store.write(lambda conn, s=started, a=alive, e=ended: conn.execute(runs.insert().values(
                crawl_id=crawl_id, host=socket.gethostname(), pid=dead_pid(), started_at=s, alive_at=a,
                ended_at=e)))
    figures = stats(any_db)
    assert figures["duration_s"] == 30.0 and figures["live_runs"] == 0
    text = format_stats(figures)
    assert "running, but no process works on it: last alive 2026-01-01 01:00:20 UTC" in text, text


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait(timeout=30)
    return proc.pid


def test_stats_without_a_database_or_a_crawl(tmp_path: Path, sqlite_db: str) -> None:
    with pytest.raises(QueryError, match="no database at"):
        stats(str(tmp_path / "none.db"))
    open_store(sqlite_db).close()
    with pytest.raises(QueryError, match="no crawl in this database"):
        stats(sqlite_db)


def test_percent_signs_and_parameters_look_alike(db: str) -> None:
    assert run_readonly(db, "SELECT '100%' AS p, '%s' AS q")[1] == [("100%", "%s")]


def test_postgres_explain_analyze_of_a_write_is_refused(pg_db: str) -> None:
    fill(pg_db)
    with pytest.raises(QueryError, match=r"^refused: the query writes \(DELETE\)$"):
        run_readonly(pg_db, "EXPLAIN ANALYZE DELETE FROM pages")
    with pytest.raises(QueryError, match=r"^refused: the query writes \(SELECT FOR UPDATE\)$"):
        run_readonly(pg_db, "SELECT * FROM pages FOR UPDATE")
    assert page_count(pg_db) == 3


@pytest.mark.parametrize("sql", [
    "SELECT pg_read_file('/etc/passwd')",
    "SELECT pg_catalog.PG_READ_BINARY_FILE('/etc/hostname')",
    "SELECT * FROM pg_ls_dir('.')",
    "SELECT lo_import('/etc/passwd')",
    "SELECT set_config('role', 'postgres', true), count(*) FROM pages",
    "SELECT query_to_xml('select pg_read' || '_file(''/etc/passwd'')', true, true, '')",
    "SELECT pg_terminate_backend(1)",
    'SELECT U&"\\0070g_read_file"(\'/etc/passwd\')',
])
def test_postgres_functions_that_reach_outside_are_refused(pg_db: str, sql: str) -> None:
    fill(pg_db)
    with pytest.raises(QueryError, match="^refused: "):
        run_readonly(pg_db, sql)


def test_a_superuser_reads_as_pg_read_all_data(pg_db: str) -> None:
    """The fence does not rest on the name list alone: the query runs without the superuser's powers."""
    fill(pg_db)
    assert run_readonly(pg_db, "SELECT current_user, count(*) FROM pages")[1] == [("pg_read_all_data", 3)]
    with pytest.raises(QueryError, match="must be superuser"):
        run_readonly(pg_db, "SELECT current_setting('data_directory')")
