"""Access-log head forward-only by the database itself, on PostgreSQL as on SQLite.

Migration 0010 keeps ``access_log_head`` (the newest row's id and hash, and how many rows were
ever written) with a trigger at every insert. On SQLite its triggers refuse a rewind and a
delete; on PostgreSQL only the grants did, and grants hold only where a deployment set them up:
someone connecting as the owning role could delete the newest access-log rows and then move the
head back to the row before them, and nothing would tell. Here PostgreSQL gets triggers too,
whoever connects (short of the owner dropping them): an UPDATE may only move the head forward
(the insert trigger's own update does), and DELETE and TRUNCATE are refused. On SQLite the
triggers of 0010 are re-created if missing.

Revision ID: 0012
Revises: 0011
"""

from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

SQLITE = {
    "access_log_head_no_rewind": (
        "BEFORE UPDATE ON access_log_head WHEN NEW.rows < OLD.rows",
        "access_log_head only moves forward",
    ),
    "access_log_head_no_delete": (
        "BEFORE DELETE ON access_log_head",
        "access_log_head cannot be deleted",
    ),
}
POSTGRESQL = (
    "CREATE FUNCTION access_log_head_refuse() RETURNS trigger AS $$ BEGIN "
    "IF TG_OP = 'UPDATE' AND NEW.rows >= OLD.rows AND NEW.row_id >= OLD.row_id THEN "
    "RETURN NEW; END IF; "
    "IF TG_OP = 'UPDATE' THEN "
    "RAISE EXCEPTION 'access_log_head only moves forward: rows % to %, row % to %', "
    "OLD.rows, NEW.rows, OLD.row_id, NEW.row_id USING ERRCODE = 'insufficient_privilege'; "
    "END IF; "
    "RAISE EXCEPTION 'access_log_head cannot be deleted: % refused', TG_OP "
    "USING ERRCODE = 'insufficient_privilege'; "
    "END $$ LANGUAGE plpgsql SET search_path = pg_catalog, public",
    "CREATE TRIGGER access_log_head_no_rewind BEFORE UPDATE ON access_log_head "
    "FOR EACH ROW EXECUTE FUNCTION access_log_head_refuse()",
    "CREATE TRIGGER access_log_head_no_delete BEFORE DELETE ON access_log_head "
    "FOR EACH ROW EXECUTE FUNCTION access_log_head_refuse()",
    "CREATE TRIGGER access_log_head_no_truncate BEFORE TRUNCATE ON access_log_head "
    "FOR EACH STATEMENT EXECUTE FUNCTION access_log_head_refuse()",
)


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for name, (when, refusal) in SQLITE.items():
            op.execute(
                f"CREATE TRIGGER IF NOT EXISTS {name} {when} BEGIN "
                f"SELECT RAISE(ABORT, '{refusal}'); END"
            )
        return
    for statement in POSTGRESQL:
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        return  # the triggers are 0010's
    for name in ("access_log_head_no_rewind", "access_log_head_no_delete"):
        op.execute(f"DROP TRIGGER IF EXISTS {name} ON access_log_head")
    op.execute("DROP TRIGGER IF EXISTS access_log_head_no_truncate ON access_log_head")
    op.execute("DROP FUNCTION IF EXISTS access_log_head_refuse()")
