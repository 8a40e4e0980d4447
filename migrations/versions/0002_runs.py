"""runs: one row per process working on a crawl (heartbeat, pages), for safe resumes and `crawl stats`.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-06 00:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("crawl_id", sa.Integer(), nullable=False),
        sa.Column("host", sa.Text(), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("alive_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("pages", sa.Integer(), server_default="0", nullable=False),
        sa.ForeignKeyConstraint(["crawl_id"], ["crawls.id"], name=op.f("fk_runs_crawl_id_crawls")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_runs")),
    )
    op.create_index(op.f("ix_runs_crawl_id"), "runs", ["crawl_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_runs_crawl_id"), table_name="runs")
    op.drop_table("runs")
