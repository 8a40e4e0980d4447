"""recrawl, sitemaps and search: pages.etag / last_modified / unchanged / kind, links.lastmod,
crawls.recrawl_of, and the search index
(SQLite: the FTS5 table pages_fts over pages' title and text, kept current by triggers; PostgreSQL: a GIN
index on their tsvector, the expression crawler.store.search queries).

Revision ID: 0004
Revises: 0002
Create Date: 2026-12-06 00:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None

# the same text as crawler.store.search.PG_VECTOR: a query uses the index only when it is identical
PG_VECTOR = "to_tsvector('english', coalesce(title, '') || ' ' || coalesce(text, ''))"
FTS_NEW = "INSERT INTO pages_fts(rowid, title, text) VALUES (new.id, new.title, new.text);"
FTS_OLD = "INSERT INTO pages_fts(pages_fts, rowid, title, text) VALUES ('delete', old.id, old.title, old.text);"
SQLITE_UP = [
    "CREATE VIRTUAL TABLE pages_fts USING fts5(title, text, content='pages', content_rowid='id', "
    "tokenize='porter unicode61')",
    f"CREATE TRIGGER pages_fts_insert AFTER INSERT ON pages BEGIN {FTS_NEW} END",
    f"CREATE TRIGGER pages_fts_delete AFTER DELETE ON pages BEGIN {FTS_OLD} END",
    f"CREATE TRIGGER pages_fts_update AFTER UPDATE OF title, text ON pages BEGIN {FTS_OLD} {FTS_NEW} END",
    "INSERT INTO pages_fts(pages_fts) VALUES ('rebuild')",
]
SQLITE_DOWN = ["DROP TRIGGER pages_fts_update", "DROP TRIGGER pages_fts_delete", "DROP TRIGGER pages_fts_insert",
               "DROP TABLE pages_fts"]


def upgrade() -> None:
    with op.batch_alter_table("pages") as batch:
        batch.add_column(sa.Column("etag", sa.Text(), nullable=True))
        batch.add_column(sa.Column("last_modified", sa.Text(), nullable=True))
        batch.add_column(sa.Column("unchanged", sa.Boolean(), server_default=sa.false(), nullable=False))
        batch.add_column(sa.Column("kind", sa.Text(), nullable=True))
    with op.batch_alter_table("links") as batch:
        batch.add_column(sa.Column("lastmod", sa.Text(), nullable=True))
    with op.batch_alter_table("crawls") as batch:
        batch.add_column(sa.Column("recrawl_of", sa.Integer(), nullable=True))
    if op.get_bind().dialect.name == "sqlite":
        for statement in SQLITE_UP:
            op.execute(statement)
    else:
        op.execute(f"CREATE INDEX ix_pages_search ON pages USING gin ({PG_VECTOR})")


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for statement in SQLITE_DOWN:
            op.execute(statement)
    else:
        op.execute("DROP INDEX ix_pages_search")
    with op.batch_alter_table("crawls") as batch:
        batch.drop_column("recrawl_of")
    with op.batch_alter_table("links") as batch:
        batch.drop_column("lastmod")
    with op.batch_alter_table("pages") as batch:
        batch.drop_column("kind")
        batch.drop_column("unchanged")
        batch.drop_column("last_modified")
        batch.drop_column("etag")
