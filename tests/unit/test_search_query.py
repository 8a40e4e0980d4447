"""The query language of `crawl search` (crawler.store.search.parse) and what it becomes per backend."""

from __future__ import annotations

import pytest

from crawler.store.query import QueryError
from crawler.store.search import Term, parse, to_fts5, to_tsquery


@pytest.mark.parametrize("query, fts5, tsquery", [
    ("crawl", '("crawl")', "('crawl')"),
    ("Two Words", '("two" AND "words")', "('two') & ('words')"),
    ('"a phrase" x', '("a phrase" AND "x")', "('a' <-> 'phrase') & ('x')"),
    ("crawl*", '("crawl"*)', "('crawl':*)"),
    ("crawler -greenlet", '("crawler") NOT "greenlet"', "('crawler') & !('greenlet')"),
    ("e-mail", '("e mail")', "('e' <-> 'mail')"),
    ("it's OR NEAR(x)", '("it s" AND "or" AND "near x")', "('it' <-> 's') & ('or') & ('near' <-> 'x')"),
])
def test_queries_become_quoted_expressions(query: str, fts5: str, tsquery: str) -> None:
    terms = parse(query)
    assert (to_fts5(terms), to_tsquery(terms)) == (fts5, tsquery)


def test_terms() -> None:
    assert parse('-"no way" yes*') == [Term(("no", "way"), False, True), Term(("yes",), True, False)]


@pytest.mark.parametrize("query, message", [
    ('"open', "a quote is not closed"),
    ("-only -minus", "no word to look for"),
    ("", "no word to look for"),
    ("!!! ...", "no word to look for"),
    ("cr*wl", "'*' may only end a word"),
    ("crawl**", "'*' may only end a word"),
])
def test_syntax_errors(query: str, message: str) -> None:
    with pytest.raises(QueryError, match=message):
        parse(query)
