"""After release: the evaluation lottery on queue entries, scored-period snapshots, labels.

- ``queue_entries.source`` ("list" or "lottery") and ``selection_probability``: how each entry
  came to be offered outreach, for the evaluation arm's inverse-probability estimates.
- ``queue_entries.label``: the outcome that came back for the entry's period (labels ingest).
- ``scored_periods``: what batch scoring kept of a period beyond its queue: the snapshot file of
  the whole scored population (its sha256 bound here), the lottery's design and draw, and the
  estimates and drift computed when it was scored.
- ``period_labels``: a period's ingested labels (file and sha256) and the realised results.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("queue_entries") as batch:
        batch.add_column(sa.Column("source", sa.String(10), nullable=False, server_default="list"))
        batch.add_column(
            sa.Column("selection_probability", sa.Float, nullable=False, server_default="1.0")
        )
        batch.add_column(sa.Column("label", sa.Integer, nullable=True))
    op.create_table(
        "scored_periods",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("model_name", sa.String(120), nullable=False),
        sa.Column("period", sa.String(7), nullable=False),
        sa.Column("model_version", sa.String(20), nullable=False),
        sa.Column("audit_id", sa.String(80), nullable=False),
        sa.Column("population", sa.Integer, nullable=False),
        sa.Column("capacity", sa.Integer, nullable=False),
        sa.Column("band_end", sa.Integer, nullable=False, server_default="0"),
        sa.Column("lottery_places", sa.Integer, nullable=False, server_default="0"),
        sa.Column("lottery_seed", sa.String(64), nullable=False, server_default=""),
        sa.Column("snapshot", sa.Text, nullable=False),
        sa.Column("snapshot_sha256", sa.String(64), nullable=False),
        sa.Column("estimates", sa.JSON, nullable=True),
        sa.Column("drift", sa.JSON, nullable=True),
        sa.Column("scored_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("model_name", "period"),
    )
    op.create_table(
        "period_labels",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("model_name", sa.String(120), nullable=False),
        sa.Column("period", sa.String(7), nullable=False),
        sa.Column("labelled", sa.Integer, nullable=False),
        sa.Column("positives", sa.Integer, nullable=False),
        sa.Column("unlabelled", sa.Integer, nullable=False),
        sa.Column("labels", sa.Text, nullable=False),
        sa.Column("labels_sha256", sa.String(64), nullable=False),
        sa.Column("realised", sa.JSON, nullable=True),
        sa.Column("ingested_by", sa.String(120), nullable=False),
        sa.Column("ingested_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("model_name", "period"),
    )


def downgrade() -> None:
    op.drop_table("period_labels")
    op.drop_table("scored_periods")
    with op.batch_alter_table("queue_entries") as batch:
        batch.drop_column("label")
        batch.drop_column("selection_probability")
        batch.drop_column("source")
