"""Search: the query language of `crawl search` and its SQL over the index migration 0004 owns.

A query is words (all must match), `"a phrase"`, `prefix*` and `-word` (must not match). `parse` turns it
into Terms (pure; a syntax error is a QueryError), which become an FTS5 MATCH expression on SQLite
(ranked by bm25, the title weighing 5x the text) or a tsquery on PostgreSQL (ranked by ts_rank over the
GIN-indexed tsvector). Both stem English words (FTS5's porter tokenizer; the 'english' configuration).
Snippets mark the matched words with [ and ].
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, text

from crawler.store.query import QueryError, find_crawl, reading

TOKEN = re.compile(r'(-?)(?:"([^"]*)"|([^\s"]+))')
WORD = re.compile(r"\w+")
COLUMNS = ["url", "title", "snippet", "rank"]
# the same text as migration 0004's index: PostgreSQL uses the index only for this exact expression
PG_VECTOR = "to_tsvector('english', coalesce(title, '') || ' ' || coalesce(text, ''))"


@dataclass(frozen=True)
class Term:
    words: tuple[str, ...]  # one word, or a phrase's words in order
    prefix: bool = False  # the last word is a prefix
    negated: bool = False


def parse(query: str) -> list[Term]:
    """The terms of a search query; QueryError (one line) when it cannot be read."""
    if query.count('"') % 2:
        raise QueryError(f"search query {query!r}: a quote is not closed")
    terms = [term for match in TOKEN.finditer(query) if (term := _term(*match.groups())) is not None]
    if not any(not term.negated for term in terms):
        raise QueryError(f"search query {query!r}: no word to look for")
    return terms


def _term(minus: str, phrase: str | None, word: str | None) -> Term | None:
    token = phrase if phrase is not None else word or ""
    prefix = phrase is None and token.endswith("*")
    if "*" in token.rstrip("*") or token.endswith("**"):
        raise QueryError(f"search query: {token!r}: '*' may only end a word")
    words = tuple(w.lower() for w in WORD.findall(token))
    return Term(words, prefix, minus == "-") if words else None


def to_fts5(terms: list[Term]) -> str:
    """An FTS5 MATCH expression: every word quoted, so no input is FTS5 syntax of its own."""
    def quoted(term: Term) -> str:
        return '"' + " ".join(term.words) + '"' + ("*" if term.prefix else "")

    positive = " AND ".join(quoted(t) for t in terms if not t.negated)
    return f"({positive})" + "".join(f" NOT {quoted(t)}" for t in terms if t.negated)


def to_tsquery(terms: list[Term]) -> str:
    """A to_tsquery('english', ...) argument: phrases with <->, prefixes with :*, negation with !."""
    def lexemes(term: Term) -> str:
        words = [f"'{w}'" for w in term.words]
        words[-1] += ":*" if term.prefix else ""
        phrase = " <-> ".join(words)
        return f"!({phrase})" if term.negated else f"({phrase})"

    return " & ".join(lexemes(t) for t in terms)


SQLITE = text(
    "SELECT pages.url, pages.title, snippet(pages_fts, 1, '[', ']', '…', 16) AS snippet, "
    "-bm25(pages_fts, 5.0, 1.0) AS rank FROM pages_fts JOIN pages ON pages.id = pages_fts.rowid "
    "WHERE pages_fts MATCH :query AND pages.crawl_id = :crawl ORDER BY bm25(pages_fts, 5.0, 1.0) LIMIT :limit"
)
POSTGRES = text(  # ts_headline is slow on long text: only for the rows shown
    "WITH q AS (SELECT to_tsquery('english', :query) AS query), "
    f"best AS (SELECT pages.url, pages.title, pages.text, ts_rank({PG_VECTOR}, q.query) AS rank "
    f"FROM pages, q WHERE {PG_VECTOR} @@ q.query AND pages.crawl_id = :crawl ORDER BY rank DESC LIMIT :limit) "
    "SELECT best.url, best.title, ts_headline('english', coalesce(best.text, ''), q.query, "
    "'StartSel=[, StopSel=], MaxWords=24, MinWords=12') AS snippet, best.rank "
    "FROM best, q ORDER BY best.rank DESC"
)


def search(db: str, query: str, crawl_id: int | None = None, limit: int = 20) -> tuple[list[str], list[Any]]:
    """(columns, rows) of the pages of the crawl (default: the latest) best matching `query`, best first."""
    terms = parse(query)
    with reading(db, f"search {db}") as conn:
        return COLUMNS, ranked(conn, terms, find_crawl(conn, crawl_id).id, limit)


def ranked(conn: Connection, terms: list[Term], crawl_id: int, limit: int) -> list[Any]:
    postgres = conn.dialect.name == "postgresql"
    statement, match = (POSTGRES, to_tsquery(terms)) if postgres else (SQLITE, to_fts5(terms))
    return [tuple(row) for row in conn.execute(statement, {"query": match, "crawl": crawl_id, "limit": limit})]
