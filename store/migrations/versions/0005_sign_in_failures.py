"""Sign-in counters shared by every worker: attempts per address, failures per name.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sign_in_counters",
        sa.Column("kind", sa.String(20), primary_key=True),
        sa.Column("key", sa.String(300), primary_key=True),
        sa.Column("count", sa.Integer, nullable=False, server_default="0"),
        sa.Column("window_start", sa.Float, nullable=False),
        sa.Column("locks", sa.Integer, nullable=False, server_default="0"),
        sa.Column("locked_until", sa.Float, nullable=False, server_default="0"),
        sa.Column("forget_at", sa.Float, nullable=False),
    )
    op.create_index("ix_sign_in_counters_forget_at", "sign_in_counters", ["forget_at"])


def downgrade() -> None:
    op.drop_index("ix_sign_in_counters_forget_at", table_name="sign_in_counters")
    op.drop_table("sign_in_counters")
