"""Monitoring: group counts per scored period, and queue entries' groups for outcome aggregates;
queue entries' areas indexed and their main reasons' features kept for month-to-month changes;
users' session epoch (signing out ends every session of that user).

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "period_groups",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("model_name", sa.String(120), nullable=False),
        sa.Column("period", sa.String(7), nullable=False),
        sa.Column("attribute", sa.String(120), nullable=False),
        sa.Column("group_name", sa.String(240), nullable=False),
        sa.Column("population", sa.Integer, nullable=False),
        sa.Column("selected", sa.Integer, nullable=False),
        sa.UniqueConstraint("model_name", "period", "attribute", "group_name"),
    )
    op.create_table(
        "entry_groups",
        sa.Column(
            "entry_id",
            sa.Integer,
            sa.ForeignKey("queue_entries.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("attribute", sa.String(120), primary_key=True),
        sa.Column("group_name", sa.String(240), nullable=False),
    )
    op.create_index("ix_queue_entries_area", "queue_entries", ["area"])
    op.add_column("queue_entries", sa.Column("reason_features", sa.String(400), nullable=True))
    op.add_column(
        "users", sa.Column("session_epoch", sa.Integer, nullable=False, server_default="0")
    )


def downgrade() -> None:
    op.drop_column("users", "session_epoch")
    op.drop_column("queue_entries", "reason_features")
    op.drop_index("ix_queue_entries_area", "queue_entries")
    op.drop_table("entry_groups")
    op.drop_table("period_groups")
