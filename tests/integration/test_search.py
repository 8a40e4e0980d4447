"""`crawl search`: ranked full-text search over the pages of a crawl, on SQLite (FTS5) and PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from conftest import run_cli
from servers import AdversarialServer, serve, static

pytest_plugins = ["conftest_db"]

PAGES = {
    "/": ("Home", "Welcome. <a href='/a'>a</a> <a href='/b'>b</a> <a href='/c'>c</a>"),
    "/a": ("Greenlets", "Greenlets are cooperative threads. The crawler fetches with greenlets."),
    "/b": ("Databases", "SQLite and PostgreSQL both ship full text search for a crawled database."),
    "/c": ("Threads", "Threads are preemptive. A crawler can use threads too."),
}


@pytest.fixture(scope="module")
def server() -> Iterator[AdversarialServer]:
    with serve() as server:
        for path, (title, body) in PAGES.items():
            server.mount(path, static(f"<html><title>{title}</title><body><p>{body}</p></body></html>".encode()))
        yield server


@pytest.fixture
def crawled(server: AdversarialServer, any_db: str) -> str:
    result = run_cli(server.url("/"), "--db", any_db, "--quiet", "--parse-workers", "0", "--engine", "threads")
    assert result.returncode == 0, result.stderr
    return any_db


def found(db: str, terms: str, *args: str) -> list[dict[str, object]]:
    result = run_cli("search", terms, "--db", db, "--format", "json", *args)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def paths(rows: list[dict[str, object]]) -> list[str]:
    return ["/" + str(row["url"]).split("/", 3)[3] for row in rows]


def test_words_are_all_required_and_ranked_best_first(crawled: str) -> None:
    rows = found(crawled, "greenlets")
    assert paths(rows) == ["/a"]
    assert "[Greenlets]" in str(rows[0]["snippet"]) and rows[0]["title"] == "Greenlets"
    assert sorted(paths(found(crawled, "crawler threads"))) == ["/a", "/c"]
    ranks = [row["rank"] for row in found(crawled, "threads")]
    assert ranks == sorted(ranks, reverse=True) and len(ranks) == 2  # /c (title and text) before /a


def test_phrase_prefix_and_minus(crawled: str) -> None:
    assert paths(found(crawled, '"full text search"')) == ["/b"]
    assert paths(found(crawled, '"text full search"')) == []
    assert paths(found(crawled, "green*")) == ["/a"]
    assert paths(found(crawled, "crawler -greenlets")) == ["/c"]
    assert paths(found(crawled, "threads", "--limit", "1")) == ["/c"]


@pytest.mark.parametrize("terms", ['"unclosed', "-only", "cr*wl", ""])
def test_a_query_syntax_error_is_one_line_and_exit_2(crawled: str, terms: str) -> None:
    result = run_cli("search", "--db", crawled, "--", terms)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.startswith("crawl: search query") and result.stderr.count("\n") == 1


def test_crawl_sql_can_use_the_index(crawled: str) -> None:
    if crawled.startswith("postgresql"):
        sql = ("SELECT count(*) FROM pages WHERE to_tsvector('english', coalesce(title, '') || ' ' || "
               "coalesce(text, '')) @@ to_tsquery('english', 'greenlets')")
    else:
        sql = "SELECT count(*) FROM pages_fts WHERE pages_fts MATCH 'greenlets'"
    result = run_cli("sql", sql, "--db", crawled, "--format", "csv")
    assert result.returncode == 0 and result.stdout.splitlines()[1] == "1", result.stderr


def test_a_recrawl_keeps_its_pages_searchable(crawled: str) -> None:
    result = run_cli("recrawl", "--db", crawled, "--quiet", "--parse-workers", "0")
    assert result.returncode == 0, result.stderr
    assert paths(found(crawled, "greenlets")) == ["/a"]
    assert paths(found(crawled, "greenlets", "--crawl", "1")) == ["/a"]
