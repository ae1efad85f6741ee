"""The operations the revisions repeat, written once.

Every change goes through a batch (so SQLite, which cannot alter most of a table in place, can
apply it too), and names its indexes and constraints the way `database.Base`'s naming
convention does, so the database and the models agree.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op


def add_columns(table: str, *columns: sa.Column[Any], indexed: Sequence[str] = ()) -> None:
    """Add `columns` to `table`, then an index on each column named in `indexed`."""
    with op.batch_alter_table(table, schema=None) as batch_op:
        for column in columns:
            batch_op.add_column(column)
        for name in indexed:
            batch_op.create_index(batch_op.f(f"ix_{table}_{name}"), [name], unique=False)


def drop_columns(table: str, *names: str, indexed: Sequence[str] = ()) -> None:
    """The reverse of `add_columns`: the indexes on `indexed` first, then the columns `names`."""
    with op.batch_alter_table(table, schema=None) as batch_op:
        for name in indexed:
            batch_op.drop_index(batch_op.f(f"ix_{table}_{name}"))
        for name in names:
            batch_op.drop_column(name)


def create_session_table(
    table: str,
    *columns: sa.Column[Any],
    primary_key: Sequence[str] = ("id",),
    index_session_id: bool = True,
) -> None:
    """A table whose rows belong to a session: its `session_id` references `sessions.id`, and
    its rows go when their session does."""
    op.create_table(
        table,
        *columns,
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["sessions.id"],
            name=op.f(f"fk_{table}_session_id_sessions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(*primary_key, name=op.f(f"pk_{table}")),
    )
    if index_session_id:
        add_columns(table, indexed=["session_id"])


def drop_session_table(table: str, *, index_session_id: bool = True) -> None:
    """The reverse of `create_session_table`."""
    if index_session_id:
        drop_columns(table, indexed=["session_id"])
    op.drop_table(table)
