"""session budget and what the session has spent"""

import sqlalchemy as sa

from computer_use.migrations.ops import add_columns, drop_columns

revision = "0005"
down_revision = "0004"


def upgrade() -> None:
    add_columns(
        "sessions",
        sa.Column("budget", sa.JSON(), nullable=True),
        sa.Column("spent", sa.JSON(), nullable=True),
    )


def downgrade() -> None:
    drop_columns("sessions", "spent", "budget")
