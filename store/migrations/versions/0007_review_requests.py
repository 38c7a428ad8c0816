"""Requests for review of a listing, and the history of their states.

- ``review_requests``: wrong data, or a person who asked not to be contacted, filed by a
  coordinator about a person's latest queue entry (``entry_id`` is set to NULL if that entry is
  removed; its model and period stay on the request).
- ``review_request_events``: every state a request entered, with who moved it and why.
  Append-only: on SQLite, triggers refuse UPDATE and DELETE; on PostgreSQL the service's role is
  granted SELECT and INSERT only (docs, grants).

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

TRIGGERS = {
    "review_request_events_no_update": ("UPDATE", "rows cannot be changed"),
    "review_request_events_no_delete": ("DELETE", "rows cannot be deleted"),
}


def upgrade() -> None:
    op.create_table(
        "review_requests",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("person_id", sa.String(120), nullable=False),
        sa.Column("model_name", sa.String(120), nullable=False),
        sa.Column("period", sa.String(7), nullable=False),
        sa.Column(
            "entry_id",
            sa.Integer,
            sa.ForeignKey("queue_entries.id", ondelete="SET NULL"),
            nullable=True,
        ),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("raised_by", sa.String(20), nullable=False),
        sa.Column("details", sa.Text, nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("filed_by", sa.String(120), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_review_requests_person_id", "review_requests", ["person_id"])
    op.create_index("ix_review_requests_entry_id", "review_requests", ["entry_id"])
    op.create_index("ix_review_requests_state", "review_requests", ["state"])
    op.create_index("ix_review_requests_created_at", "review_requests", ["created_at"])
    op.create_table(
        "review_request_events",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("request_id", sa.Integer, sa.ForeignKey("review_requests.id"), nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("note", sa.Text, nullable=False),
        sa.Column("by", sa.String(120), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_review_request_events_request_id", "review_request_events", ["request_id"])
    if op.get_bind().dialect.name == "sqlite":
        for name, (event, refusal) in TRIGGERS.items():
            op.execute(
                f"CREATE TRIGGER {name} BEFORE {event} ON review_request_events BEGIN "
                f"SELECT RAISE(ABORT, 'review_request_events is append-only: {refusal}'); END"
            )


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for name in TRIGGERS:
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
    op.drop_index("ix_review_request_events_request_id", table_name="review_request_events")
    op.drop_table("review_request_events")
    for column in ("created_at", "state", "entry_id", "person_id"):
        op.drop_index(f"ix_review_requests_{column}", table_name="review_requests")
    op.drop_table("review_requests")
