"""Alembic revisions, date-prefixed (Alembic skips this file)."""
