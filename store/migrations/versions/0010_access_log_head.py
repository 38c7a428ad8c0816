"""Access-log head: the newest row's id and hash, kept by the database at every write.

``access_log_head`` holds one row: the id and hash of the newest access-log row and how many rows
were ever written, advanced by a trigger in the same transaction as every insert (no work on
the request path). Deleting the newest rows (with the append-only triggers dropped for a moment)
leaves the head naming a row that is gone, or counting more rows than the log holds, which
``outreach access-log verify`` reports, between two signed checkpoints as well. The count may
only grow: on SQLite, triggers refuse a rewind and a delete; on PostgreSQL the service's role is
granted SELECT only on it (docs, grants), and the trigger's function runs as its
owner. Rows purged before this migration are not counted (the count starts at the rows there
are).

Revision ID: 0010
Revises: 0009
"""

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

SQLITE = (
    "CREATE TRIGGER access_log_head_advance AFTER INSERT ON access_log BEGIN "
    "INSERT INTO access_log_head (id, row_id, hash, rows) VALUES (1, NEW.id, NEW.hash, 1) "
    "ON CONFLICT(id) DO UPDATE SET row_id = excluded.row_id, hash = excluded.hash, "
    "rows = access_log_head.rows + 1; END",
    "CREATE TRIGGER access_log_head_no_rewind BEFORE UPDATE ON access_log_head "
    "WHEN NEW.rows < OLD.rows BEGIN "
    "SELECT RAISE(ABORT, 'access_log_head only moves forward'); END",
    "CREATE TRIGGER access_log_head_no_delete BEFORE DELETE ON access_log_head BEGIN "
    "SELECT RAISE(ABORT, 'access_log_head cannot be deleted'); END",
)
POSTGRESQL = (
    "CREATE FUNCTION access_log_head_advance() RETURNS trigger AS $$ BEGIN "
    "INSERT INTO access_log_head (id, row_id, hash, rows) VALUES (1, NEW.id, NEW.hash, 1) "
    "ON CONFLICT (id) DO UPDATE SET row_id = EXCLUDED.row_id, hash = EXCLUDED.hash, "
    "rows = access_log_head.rows + 1; "
    "RETURN NEW; END $$ LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public",
    "CREATE TRIGGER access_log_head_advance AFTER INSERT ON access_log "
    "FOR EACH ROW EXECUTE FUNCTION access_log_head_advance()",
)


def upgrade() -> None:
    op.execute(
        "CREATE TABLE access_log_head (id INTEGER PRIMARY KEY CHECK (id = 1), "
        "row_id INTEGER NOT NULL, hash VARCHAR(64) NOT NULL, rows BIGINT NOT NULL)"
    )
    op.execute(
        "INSERT INTO access_log_head (id, row_id, hash, rows) "
        "SELECT 1, id, hash, (SELECT count(*) FROM access_log) FROM access_log "
        "ORDER BY id DESC LIMIT 1"
    )
    sqlite = op.get_bind().dialect.name == "sqlite"
    for statement in SQLITE if sqlite else POSTGRESQL:
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for name in ("access_log_head_advance", "access_log_head_no_rewind"):
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
        op.execute("DROP TRIGGER IF EXISTS access_log_head_no_delete")
    else:
        op.execute("DROP TRIGGER IF EXISTS access_log_head_advance ON access_log")
        op.execute("DROP FUNCTION IF EXISTS access_log_head_advance()")
    op.execute("DROP TABLE access_log_head")
