"""session owner"""

import sqlalchemy as sa

from computer_use.migrations.ops import add_columns, drop_columns

revision = "0003"
down_revision = "0002"


def upgrade() -> None:
    add_columns(
        "sessions", sa.Column("owner", sa.String(length=16), nullable=True), indexed=["owner"]
    )


def downgrade() -> None:
    drop_columns("sessions", "owner", indexed=["owner"])
