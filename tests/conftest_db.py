"""Database fixtures (a pytest plugin: `pytest_plugins = ["conftest_db"]`).

- sqlite_db: a path for a fresh SQLite file under tmp_path
- pg_db: a PostgreSQL URL whose search_path is a fresh schema, dropped afterwards (skips when no server);
  the server comes from CRAWLER_TEST_PG, default postgresql+psycopg://postgres@127.0.0.1:5432/test
- any_db: each of the two, as a parametrized fixture
- store: an open, migrated Store on any_db
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

from crawler.store.sql import Store, open_store

PG_SERVER = os.environ.get("CRAWLER_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


@pytest.fixture(scope="session")
def pg_admin() -> Iterator[object]:
    engine = create_engine(PG_SERVER, connect_args={"connect_timeout": 3})
    try:
        with engine.connect():
            pass
    except OperationalError as e:
        engine.dispose()
        pytest.skip(f"no PostgreSQL at {PG_SERVER}: {e.orig}")
    yield engine
    engine.dispose()


@pytest.fixture
def pg_db(pg_admin) -> Iterator[str]:  # type: ignore[no-untyped-def]
    schema = f"crawler_test_{uuid.uuid4().hex[:12]}"
    with pg_admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    sep = "&" if "?" in PG_SERVER else "?"
    yield f"{PG_SERVER}{sep}options=-csearch_path%3D{schema}"
    with pg_admin.begin() as conn:
        conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))


@pytest.fixture
def sqlite_db(tmp_path: Path) -> str:
    return str(tmp_path / "crawl.db")


@pytest.fixture(params=["sqlite", "postgresql"])
def any_db(request: pytest.FixtureRequest) -> str:
    return str(request.getfixturevalue("sqlite_db" if request.param == "sqlite" else "pg_db"))


@pytest.fixture
def store(any_db: str) -> Iterator[Store]:
    opened = open_store(any_db)
    yield opened
    opened.close()
