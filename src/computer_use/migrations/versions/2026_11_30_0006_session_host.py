"""session host: the API process (INSTANCE_NAME) whose desktops hold the session"""

import sqlalchemy as sa

from computer_use.migrations.ops import add_columns, drop_columns

revision = "0006"
down_revision = "0005"


def upgrade() -> None:
    add_columns(
        "sessions", sa.Column("host", sa.String(length=255), nullable=True), indexed=["host"]
    )


def downgrade() -> None:
    drop_columns("sessions", "host", indexed=["host"])
