"""message last event id"""

import sqlalchemy as sa

from computer_use.migrations.ops import add_columns, drop_columns

revision = "0002"
down_revision = "0001"


def upgrade() -> None:
    add_columns("messages", sa.Column("last_event_id", sa.Integer(), nullable=True))


def downgrade() -> None:
    drop_columns("messages", "last_event_id")
