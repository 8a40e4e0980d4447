"""what a page says of itself: pages.canonical (<link rel="canonical">), pages.noindex (a robots meta),
links.nofollow (rel="nofollow", or a page whose robots meta says nofollow: stored, not followed)

Plain ADD COLUMN on both backends (no batch rebuild of the table on SQLite, which would drop the
search triggers of 0004); so on SQLite the new columns sit after `text`.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06 00:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.add_column("pages", sa.Column("canonical", sa.Text(), nullable=True))
    op.add_column("pages", sa.Column("noindex", sa.Boolean(), server_default=sa.false(), nullable=False))
    op.add_column("links", sa.Column("nofollow", sa.Boolean(), server_default=sa.false(), nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("links") as batch:
        batch.drop_column("nofollow")
    for column in ("noindex", "canonical"):
        op.drop_column("pages", column)
