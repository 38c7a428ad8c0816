"""Users get an opaque unique id that is never issued twice, and tokens are bound to it.

A user row deleted by hand and a new user given the same integer id (SQLite reuses the largest
id once it is gone) must not inherit the old user's tokens: each token carries the ``uid`` of
the user it was issued to, and is accepted only while that user row still has it.

Revision ID: 0008
Revises: 0007
"""

import secrets

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("users", sa.Column("uid", sa.String(32), nullable=True))
    op.add_column("tokens", sa.Column("user_uid", sa.String(32), nullable=True))
    users = sa.table("users", sa.column("id", sa.Integer), sa.column("uid", sa.String(32)))
    tokens = sa.table(
        "tokens", sa.column("user_id", sa.Integer), sa.column("user_uid", sa.String(32))
    )
    connection = op.get_bind()
    for (user_id,) in connection.execute(sa.select(users.c.id)).all():
        uid = secrets.token_hex(16)
        connection.execute(users.update().where(users.c.id == user_id).values(uid=uid))
        connection.execute(tokens.update().where(tokens.c.user_id == user_id).values(user_uid=uid))
    op.create_index("ix_users_uid", "users", ["uid"], unique=True)


def downgrade() -> None:
    op.drop_index("ix_users_uid", table_name="users")
    op.drop_column("tokens", "user_uid")
    op.drop_column("users", "uid")
