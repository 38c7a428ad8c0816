"""Attestation heads: each model's attestation log head, anchored outside the log, and alarms.

``attestation_heads`` keeps, per registered model, the (sequence, hash, key id) its log was last
verified at (``kind`` ``head``), each time a log did not verify (``alarm``) and each repair a
person made (``repair``, with who and why). The service compares the log against the latest
anchored head on every poll, so a log cut short, rewritten or re-signed with another key stops
serving (:mod:`store.attestation_heads`). Append-only: on SQLite, triggers refuse UPDATE and
DELETE; on PostgreSQL the service's role is granted SELECT and INSERT only (docs, grants).

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

TRIGGERS = {
    "attestation_heads_no_update": ("UPDATE", "rows cannot be changed"),
    "attestation_heads_no_delete": ("DELETE", "rows cannot be deleted"),
}


def upgrade() -> None:
    op.create_table(
        "attestation_heads",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("model", sa.String(120), nullable=False),
        sa.Column("kind", sa.String(10), nullable=False),
        sa.Column("sequence", sa.Integer, nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.Column("key_id", sa.String(32), nullable=False),
        sa.Column("detail", sa.Text, nullable=False),
        sa.Column("by", sa.String(120), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_attestation_heads_model", "attestation_heads", ["model"])
    if op.get_bind().dialect.name == "sqlite":
        for name, (event, refusal) in TRIGGERS.items():
            op.execute(
                f"CREATE TRIGGER {name} BEFORE {event} ON attestation_heads BEGIN "
                f"SELECT RAISE(ABORT, 'attestation_heads is append-only: {refusal}'); END"
            )


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for name in TRIGGERS:
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
    op.drop_index("ix_attestation_heads_model", table_name="attestation_heads")
    op.drop_table("attestation_heads")
