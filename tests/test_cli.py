"""Every command and exit code of the CLI, bad input included: one line on stderr, never a traceback."""

from __future__ import annotations

import csv
import io
import json
import shlex
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, run_cli
from servers import serve

from crawler.cli import cli


def assert_one_line_error(result, code: int, needle: str) -> None:  # type: ignore[no-untyped-def]
    assert result.returncode == code, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    assert needle in result.stderr, result.stderr


@pytest.fixture(scope="module")
def crawled(site_factory, tmp_path_factory) -> Path:  # type: ignore[no-untyped-def]
    site = site_factory("--pages", "12", "--fanout", "4")
    db = tmp_path_factory.mktemp("cli") / "crawl.db"
    result = run_cli(site.url, "--db", str(db), "--quiet", "--parse-workers", "1")
    assert result.returncode == 0, result.stderr
    return db


@pytest.mark.parametrize("command", [[], ["crawl"], ["sql"], ["stats"], ["crawls"], ["export"], ["bench"],
                                     ["recrawl"], ["changes"], ["search"]])
def test_help_of_every_command(command: list[str]) -> None:
    result = run_cli(*command, "--help")
    assert result.returncode == 0 and "Usage:" in result.stdout


def test_crawl_help_lists_every_option_and_the_readme_documents_it() -> None:
    out = run_cli("crawl", "--help").stdout
    options = [name for param in cli.commands["crawl"].params for name in param.opts if name.startswith("--")]
    assert {"--engine", "--concurrency", "--db", "--max-depth", "--max-pages", "--scope", "--include",
            "--exclude", "--parse-workers", "--user-agent", "--quiet", "--per-host", "--delay", "--timeout",
            "--retries", "--max-bytes", "--ignore-robots", "--allow-private"} <= set(options)
    readme = (ROOT / "README.md").read_text()
    for option in options:
        assert option in out and f"| `{option}" in readme, option


@pytest.mark.parametrize("fmt", ["table", "csv", "json"])
def test_sql_formats_parse(crawled: Path, fmt: str) -> None:
    result = run_cli("sql", "SELECT url, title FROM pages ORDER BY url", "--db", str(crawled), "--format", fmt)
    assert result.returncode == 0, result.stderr
    if fmt == "csv":
        rows = list(csv.reader(io.StringIO(result.stdout)))
        assert rows[0] == ["url", "title"] and len(rows) == 13
    elif fmt == "json":
        rows = json.loads(result.stdout)
        assert len(rows) == 12 and set(rows[0]) == {"url", "title"}
    else:
        assert "Page 3 of the test site" in result.stdout and "url" in result.stdout.splitlines()[0]


@pytest.mark.parametrize("query", [
    "DELETE FROM pages",
    "DROP TABLE pages",
    "UPDATE pages SET title = 'x'",
    "INSERT INTO links (page_id, url, anchor) VALUES (1, 'x', 'y')",
    "WITH doomed AS (SELECT id FROM pages) DELETE FROM pages WHERE id IN (SELECT id FROM doomed)",
    "SELECT 1; DELETE FROM pages",
    "ATTACH DATABASE 'other.db' AS other",
    "PRAGMA journal_mode = DELETE",
    "VACUUM",
])
def test_sql_refuses_writes_and_the_data_stays(crawled: Path, query: str) -> None:
    result = run_cli("sql", query, "--db", str(crawled))
    assert_one_line_error(result, 2, "crawl: ")
    with sqlite3.connect(crawled) as conn:
        assert conn.execute("SELECT count(*), count(title) FROM pages").fetchone() == (12, 12)


def test_sql_refuses_fts3_tokenizer_with_one_line(crawled: Path) -> None:
    result = run_cli("sql", "SELECT hex(fts3_tokenizer('simple'))", "--db", str(crawled))
    assert_one_line_error(result, 2, "crawl: refused: fts3_tokenizer() reaches outside the crawl's tables")
    assert result.stdout == "" and len(result.stderr.splitlines()) == 1


def test_sql_error_and_missing_database(crawled: Path, tmp_path: Path) -> None:
    assert_one_line_error(run_cli("sql", "SELECT nope FROM pages", "--db", str(crawled)), 2, "nope")
    assert_one_line_error(run_cli("sql", "SELECT 1", "--db", str(tmp_path / "none.db")), 2, "none.db")
    assert not (tmp_path / "none.db").exists()


def test_stats(crawled: Path) -> None:
    result = run_cli("stats", "--db", str(crawled))
    assert result.returncode == 0, result.stderr
    assert "finished" in result.stdout and "12" in result.stdout and "200" in result.stdout


def test_missing_seeds_file(db: Path) -> None:
    assert_one_line_error(run_cli("no-such-seeds.txt", "--db", str(db)), 2, "no such seeds file")


def test_junk_lines_are_skipped_with_a_warning_and_good_lines_crawled(site_factory, db: Path,
                                                                      tmp_path: Path) -> None:
    site = site_factory("--pages", "12", "--fanout", "4")
    seeds = tmp_path / "seeds.txt"
    seeds.write_text(f"# seeds\nthis is junk\n{site.url}\n")
    result = run_cli(str(seeds), "--db", str(db), "--max-depth", "0")
    assert result.returncode == 0, result.stderr
    assert f"{seeds}:2: 'this is junk': not an http(s) URL, skipped" in result.stderr
    assert "Traceback" not in result.stderr
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT url FROM pages").fetchall() == [(site.url,)]


def test_unwritable_db(tmp_path: Path) -> None:
    result = run_cli("http://127.0.0.1:9/", "--db", str(tmp_path / "missing-dir" / "x.db"))
    assert_one_line_error(result, 1, "crawl: ")


def test_another_applications_database_is_refused(tmp_path: Path) -> None:
    theirs = tmp_path / "theirs.db"
    with sqlite3.connect(theirs) as conn:
        conn.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)")
    before = theirs.read_bytes()
    result = run_cli("http://127.0.0.1:9/", "--db", str(theirs))
    assert_one_line_error(result, 2, "holds another application's tables (customers) and no alembic_version")
    assert len(result.stderr.splitlines()) == 1 and theirs.read_bytes() == before


def test_nothing_to_resume(db: Path) -> None:
    assert_one_line_error(run_cli("--db", str(db)), 2, "nothing to resume")
    assert list(db.parent.iterdir()) == []  # no file created, nothing migrated
    db.write_bytes(b"")  # an empty file: no crawls either, and it stays empty
    assert_one_line_error(run_cli("--db", str(db)), 2, "nothing to resume")
    assert [p.name for p in db.parent.iterdir()] == [db.name] and db.read_bytes() == b""


@pytest.mark.parametrize("command", [["http://127.0.0.1:9/"], [], ["sql", "SELECT 1"], ["stats"]])
@pytest.mark.parametrize("memory", [":memory:", "sqlite:///:memory:", "sqlite://"])
def test_an_in_memory_database_is_refused(tmp_path: Path, command: list[str], memory: str) -> None:
    result = run_cli(*command, "--db", memory, cwd=tmp_path)
    assert_one_line_error(result, 2, "crawl: an in-memory SQLite database is empty and gone when the command ends")
    assert len(result.stderr.splitlines()) == 1 and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("seed", "kind"),
    [("http://127.0.0.1:9/", "connection error: "), ("http://nothing.invalid/", "dns: ")],
    ids=["refused", "dns"],
)
def test_a_crawl_whose_hosts_never_answer_says_what_failed_and_exits_4(
    db: Path, engine: str, seed: str, kind: str
) -> None:
    result = run_cli(seed, "--db", str(db), "--timeout", "2", "--retries", "0", "--engine", engine)
    assert result.returncode == 4, result.stderr
    assert "crawl: no page could be fetched: 1 of 1 got no answer" in result.stderr
    with sqlite3.connect(db) as conn:
        [(url, status, error)] = conn.execute("SELECT url, status, error FROM pages").fetchall()
    assert (url, status) == (seed, None) and error.startswith(kind) and error.endswith("(at robots.txt)"), error
    stats = run_cli("stats", "--db", str(db))
    assert kind + "1" in stats.stdout and "blocked" not in stats.stdout, stats.stdout


def test_one_answer_is_enough_for_exit_0(db: Path) -> None:
    """A 404 is an answer: the host is up."""
    with serve() as server:
        result = run_cli(server.url("/missing"), "--db", str(db), "--ignore-robots", "--retries", "0")
    assert result.returncode == 0, result.stderr


def test_bad_regex_is_one_line(db: Path) -> None:
    assert_one_line_error(run_cli("http://127.0.0.1:9/", "--db", str(db), "--include", "("), 2, "crawl: ")


def test_control_characters_from_pages_never_reach_the_terminal(crawled: Path, tmp_path: Path) -> None:
    """A title with an ANSI escape and a bidi override: escaped in the table format and in messages,
    kept exactly in csv / json (data)."""
    db = tmp_path / "hostile.db"
    db.write_bytes(crawled.read_bytes())
    hostile = "\x1b]0;owned\x07\x1b[2J\u202eevil"
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE pages SET title = ? WHERE id = (SELECT min(id) FROM pages)", (hostile,))
    query = "SELECT title FROM pages WHERE title LIKE '%evil%'"
    table = run_cli("sql", query, "--db", str(db))
    assert table.returncode == 0 and "\x1b" not in table.stdout and "\u202e" not in table.stdout
    assert "\\x1b]0;owned\\x07\\x1b[2J\\u202eevil" in table.stdout
    data = run_cli("sql", query, "--db", str(db), "--format", "json")
    assert json.loads(data.stdout) == [{"title": hostile}]
    error = run_cli("sql", "SELECT nosuchcolumn\x1b[2J FROM pages", "--db", str(db))
    assert error.returncode == 2 and "\x1b" not in error.stderr and "\\x1b" in error.stderr
    seeds = tmp_path / "seeds.txt"
    seeds.write_text("not a url \x1b[31m\n")
    bad = run_cli(str(seeds), "--db", str(tmp_path / "x.db"))
    assert bad.returncode == 2 and "\x1b" not in bad.stderr


def test_crawl_alone_where_there_is_no_database_prints_usage_and_creates_nothing(tmp_path: Path) -> None:
    result = run_cli(cwd=tmp_path)
    assert result.returncode == 2 and "Usage: crawl" in result.stdout and "--max-depth" in result.stdout
    assert list(tmp_path.iterdir()) == []


def test_dash_h_is_help_and_the_group_help_lists_the_crawl_options() -> None:
    for command in ([], ["sql"]):
        short, long = run_cli(*command, "-h"), run_cli(*command, "--help")
        assert short.returncode == 0 and short.stdout == long.stdout
    assert "--max-pages" in run_cli("--help").stdout


def test_a_host_without_scheme_is_told_what_to_type(tmp_path: Path) -> None:
    result = run_cli("example.com", cwd=tmp_path)
    assert_one_line_error(result, 2, "give its URL: https://example.com/")
    assert list(tmp_path.iterdir()) == []


def test_seeds_from_stdin(site_factory, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    site = site_factory("--pages", "3")
    db = tmp_path / "stdin.db"
    result = run_cli("-", "--db", str(db), "--max-depth", "0", "-q", input=f"# from a pipe\n{site.url}\n")
    assert result.returncode == 0, result.stderr
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT url, status FROM pages").fetchall() == [(site.url, 200)]


@pytest.mark.parametrize(("options", "needle"), [
    (["--warc", "/no/such/dir/x.warc.gz"], "no such directory /no/such/dir"),
    (["--sitemap", "not-a-url"], "--sitemap 'not-a-url': not an http(s) URL"),
    (["--engine", "threads", "--concurrency", "5000"], "at most 1024"),
    (["--include", "("], "invalid regular expression"),
])
def test_bad_options_are_refused_before_anything_is_written(
    tmp_path: Path, options: list[str], needle: str
) -> None:
    result = run_cli("http://127.0.0.1:9/", "--db", str(tmp_path / "x.db"), *options)
    assert_one_line_error(result, 2, needle)
    assert len(result.stderr.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


def test_bad_overrides_on_resume_are_refused_and_the_crawl_stays_resumable(
    site_factory, tmp_path: Path  # type: ignore[no-untyped-def]
) -> None:
    site = site_factory("--pages", "5")
    db = tmp_path / "r.db"
    first = run_cli(site.url, "--db", str(db), "--max-pages", "1", "-q")
    assert first.returncode == 0, first.stderr
    with sqlite3.connect(db) as conn:
        before = conn.execute("SELECT count(*) FROM runs").fetchone()
        conn.execute("UPDATE crawls SET status = 'interrupted'")
    assert_one_line_error(run_cli("--db", str(db), "--warc", str(tmp_path / "no" / "x.warc.gz")), 2, "--warc")
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM runs").fetchone() == before


def test_a_delay_over_a_minute_is_allowed(site_factory, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    site = site_factory("--pages", "3")
    result = run_cli(site.url, "--db", str(tmp_path / "d.db"), "--delay", "90", "--max-depth", "0", "--ignore-robots", "-q")
    assert result.returncode == 0, result.stderr


def test_a_resume_can_turn_a_flag_off(site_factory, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import urllib.request

    site = site_factory("--pages", "6")
    db = tmp_path / "flags.db"
    first = run_cli(site.url, "--db", str(db), "--max-pages", "1", "--ignore-robots", "-q")
    assert first.returncode == 0, first.stderr
    hits = lambda: json.loads(urllib.request.urlopen(site.url + "_hits").read()).get("/robots.txt", 0)
    assert hits() == 0
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE crawls SET status = 'interrupted'")
    again = run_cli("--db", str(db), "--obey-robots", "--max-pages", "3", "-q")
    assert again.returncode == 0, again.stderr
    assert hits() == 1


@pytest.mark.parametrize("command", [["sql", "SELECT * FROM pages"], ["export"], ["crawls"]])
def test_a_full_disk_is_one_line_and_a_closed_pipe_is_quiet(crawled: Path, command: list[str]) -> None:
    with open("/dev/full", "w") as full:
        result = subprocess.run([sys.executable, "-m", "crawler", *command, "--db", str(crawled)], stdout=full,
                                stderr=subprocess.PIPE, text=True, timeout=60, check=False)
    assert result.returncode == 1 and result.stderr == "crawl: cannot write the output: No space left on device\n"
    shell = f"{sys.executable} -m crawler {' '.join(map(shlex.quote, command))} --db {crawled} --format csv | head -c 1"
    piped = subprocess.run(["bash", "-c", f"set -o pipefail; {shell} >/dev/null"], capture_output=True, text=True,
                           timeout=60, check=False)
    assert "Traceback" not in piped.stderr and "Exception" not in piped.stderr, piped.stderr
