"""Coordinator areas, disabled users, token expiry, and the record of opt-ins (with a reason).

Tokens issued before expiry existed get one 90 days from the upgrade, so nothing lives forever.

Revision ID: 0004
Revises: 0003
"""

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "user_areas",
        sa.Column(
            "user_id",
            sa.Integer,
            sa.ForeignKey("users.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("area", sa.String(120), primary_key=True),
    )
    op.create_table(
        "opt_ins",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("person_id", sa.String(120), nullable=False, index=True),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("recorded_by", sa.String(120), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.add_column(
        "users", sa.Column("disabled", sa.Boolean, nullable=False, server_default=sa.false())
    )
    op.add_column("tokens", sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True))
    tokens = sa.table("tokens", sa.column("expires_at", sa.DateTime(timezone=True)))
    op.execute(
        tokens.update()
        .where(tokens.c.expires_at.is_(None))
        .values(expires_at=datetime.now(UTC) + timedelta(days=90))
    )


def downgrade() -> None:
    op.drop_column("tokens", "expires_at")
    op.drop_column("users", "disabled")
    op.drop_table("opt_ins")
    op.drop_table("user_areas")
