"""Users, groups, stores, shares, permissions and adapters.

Revision ID: 0001
Revises:
"""
import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(64), nullable=False, unique=True),
        sa.Column("uid", sa.Integer, nullable=False),
        sa.Column("gid", sa.Integer, nullable=False),
        sa.Column("password_hash", sa.String(255), nullable=False),
        sa.Column("nt_hash", sa.String(32), nullable=False),
        sa.Column("is_admin", sa.Boolean, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "groups",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(64), nullable=False, unique=True),
        sa.Column("gid", sa.Integer, nullable=False, unique=True),
    )
    op.create_table(
        "memberships",
        sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id", ondelete="CASCADE"),
                  primary_key=True),
        sa.Column("group_id", sa.Integer, sa.ForeignKey("groups.id", ondelete="CASCADE"),
                  primary_key=True),
    )
    for table in ("metadata_stores", "block_stores"):
        op.create_table(
            table,
            sa.Column("name", sa.String(64), primary_key=True),
            sa.Column("type", sa.String(16), nullable=False),
            sa.Column("options", sa.JSON, nullable=False),
        )
    op.create_table(
        "shares",
        sa.Column("name", sa.String(255), primary_key=True),
        sa.Column("metadata_store", sa.String(64), sa.ForeignKey("metadata_stores.name"),
                  nullable=False),
        sa.Column("block_store", sa.String(64), sa.ForeignKey("block_stores.name"),
                  nullable=False),
        sa.Column("options", sa.JSON, nullable=False),
    )
    op.create_table(
        "share_permissions",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("share", sa.String(255), sa.ForeignKey("shares.name", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id", ondelete="CASCADE")),
        sa.Column("group_id", sa.Integer, sa.ForeignKey("groups.id", ondelete="CASCADE")),
        sa.Column("level", sa.String(16), nullable=False),
        sa.UniqueConstraint("share", "user_id", "group_id"),
    )
    op.create_table(
        "adapters",
        sa.Column("type", sa.String(16), primary_key=True),
        sa.Column("port", sa.Integer, nullable=False),
        sa.Column("enabled", sa.Boolean, nullable=False),
        sa.Column("config", sa.JSON, nullable=False),
    )


def downgrade() -> None:
    for table in ("adapters", "share_permissions", "shares", "block_stores", "metadata_stores",
                  "memberships", "groups", "users"):
        op.drop_table(table)
