"""frontier: an index on (crawl_id, state, host, id), so a claim walks the queued hosts in name order and
reads each host's oldest rows in bounded time, whatever the head of the queue holds
(see crawler.frontier.sql).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07 00:00:00
"""

from __future__ import annotations

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_index(op.f("ix_frontier_crawl_id_state_host_id"), "frontier", ["crawl_id", "state", "host", "id"],
                    unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_frontier_crawl_id_state_host_id"), table_name="frontier")
