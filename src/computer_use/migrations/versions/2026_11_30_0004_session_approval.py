"""session approval policy, who holds the desktop, and the approvals asked for"""

import sqlalchemy as sa

from computer_use.migrations.ops import (
    add_columns,
    create_session_table,
    drop_columns,
    drop_session_table,
)

revision = "0004"
down_revision = "0003"


def upgrade() -> None:
    create_session_table(
        "approvals",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("session_id", sa.String(length=36), nullable=False),
        sa.Column("tool_use_id", sa.String(length=100), nullable=True),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("input", sa.JSON(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
    )
    add_columns(
        "sessions",
        sa.Column("approval", sa.JSON(), nullable=True),
        sa.Column("paused_by", sa.String(length=16), nullable=True),
    )


def downgrade() -> None:
    drop_columns("sessions", "paused_by", "approval")
    drop_session_table("approvals")
