"""Attestation heads append-only by the database itself, on PostgreSQL as on SQLite.

Migration 0009 made ``attestation_heads`` append-only with triggers on SQLite and by grants on
PostgreSQL (the service's role may SELECT and INSERT only). Grants hold only where a deployment
set them up: a service connecting as the owning role could still rewrite or delete the anchored
heads and alarms. Here PostgreSQL gets triggers too, refusing every UPDATE, DELETE and TRUNCATE
whoever connects (short of the owner dropping them); on SQLite the triggers of 0009 are
re-created if missing.

Revision ID: 0011
Revises: 0010
"""

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

REFUSAL = "attestation_heads is append-only"
SQLITE = {
    "attestation_heads_no_update": ("UPDATE", "rows cannot be changed"),
    "attestation_heads_no_delete": ("DELETE", "rows cannot be deleted"),
}
POSTGRESQL = (
    "CREATE FUNCTION attestation_heads_refuse() RETURNS trigger AS $$ BEGIN "
    f"RAISE EXCEPTION '{REFUSAL}: % refused', TG_OP "
    "USING ERRCODE = 'insufficient_privilege'; "
    "END $$ LANGUAGE plpgsql SET search_path = pg_catalog, public",
    "CREATE TRIGGER attestation_heads_no_update BEFORE UPDATE ON attestation_heads "
    "FOR EACH ROW EXECUTE FUNCTION attestation_heads_refuse()",
    "CREATE TRIGGER attestation_heads_no_delete BEFORE DELETE ON attestation_heads "
    "FOR EACH ROW EXECUTE FUNCTION attestation_heads_refuse()",
    "CREATE TRIGGER attestation_heads_no_truncate BEFORE TRUNCATE ON attestation_heads "
    "FOR EACH STATEMENT EXECUTE FUNCTION attestation_heads_refuse()",
)


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for name, (event, refusal) in SQLITE.items():
            op.execute(
                f"CREATE TRIGGER IF NOT EXISTS {name} BEFORE {event} ON attestation_heads BEGIN "
                f"SELECT RAISE(ABORT, '{REFUSAL}: {refusal}'); END"
            )
        return
    for statement in POSTGRESQL:
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        return  # the triggers are 0009's
    for name in ("attestation_heads_no_update", "attestation_heads_no_delete"):
        op.execute(f"DROP TRIGGER IF EXISTS {name} ON attestation_heads")
    op.execute("DROP TRIGGER IF EXISTS attestation_heads_no_truncate ON attestation_heads")
    op.execute("DROP FUNCTION IF EXISTS attestation_heads_refuse()")
