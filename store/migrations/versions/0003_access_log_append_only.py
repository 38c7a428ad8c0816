"""Access log append-only: on SQLite, triggers refuse every UPDATE and DELETE on access_log.

On PostgreSQL the same rule is the database role's: the service's role is granted SELECT and
INSERT on access_log and never UPDATE, DELETE or TRUNCATE (docs, grants).

The retention purge (``outreach access-log purge``) is the one path that deletes rows: it drops
these triggers, deletes, and re-creates them from their stored text in one transaction, so no
other connection ever sees the table unguarded. A later migration that re-creates access_log
(a batch ``ALTER``) must re-create them too; ``outreach access-log verify`` reports them missing.

Revision ID: 0003
Revises: 0002
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

TRIGGERS = {
    "access_log_no_update": ("UPDATE", "rows cannot be changed"),
    "access_log_no_delete": ("DELETE", "rows cannot be deleted"),
}


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    for name, (event, refusal) in TRIGGERS.items():
        op.execute(
            f"CREATE TRIGGER {name} BEFORE {event} ON access_log BEGIN "
            f"SELECT RAISE(ABORT, 'access_log is append-only: {refusal}'); END"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    for name in TRIGGERS:
        op.execute(f"DROP TRIGGER IF EXISTS {name}")
