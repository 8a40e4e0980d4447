"""Alembic environment: migrates the connection the caller hands over (alembic cookbook, "sharing a
connection"), so the app (`crawler.store.upgrade`) and the tests migrate the same way.

`crawler.store.upgrade(engine)` puts an open connection in `config.attributes["connection"]`. Without one
(the `alembic` command line), the URL comes from `sqlalchemy.url` in the config or `CRAWLER_DB`.
Logging is left alone on purpose: `fileConfig` would disable the application's loggers.
"""

from __future__ import annotations

import os

from alembic import context
from sqlalchemy import Connection, create_engine

from crawler.store.schema import metadata

config = context.config
SEARCH_INDEX = ("pages_fts", "ix_pages_search")  # migration 0004's, outside the metadata (FTS5 and its
# shadow tables pages_fts_*; a GIN expression index): autogenerate must not see them as drift


def include_object(obj: object, name: str | None, type_: str, reflected: bool, compare_to: object) -> bool:
    return not (reflected and compare_to is None and (name or "").startswith(SEARCH_INDEX))


def configure(connection: Connection) -> None:
    """Online mode: batch mode ("move and copy") on SQLite, which cannot ALTER most things in place."""
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        include_object=include_object,
    )
    with context.begin_transaction():
        context.run_migrations()


def url() -> str:
    from crawler.store.db import database_url

    return database_url(config.get_main_option("sqlalchemy.url") or os.environ.get("CRAWLER_DB", "crawl.db"))


def run() -> None:
    if context.is_offline_mode():
        context.configure(url=url(), target_metadata=metadata, literal_binds=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    connection = config.attributes.get("connection")
    if connection is not None:
        configure(connection)
        return
    engine = create_engine(url())
    try:
        with engine.begin() as conn:
            configure(conn)
    finally:
        engine.dispose()


run()
