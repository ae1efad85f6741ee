"""Alembic environment and revisions, shipped in the package (database.migrate runs them)."""
