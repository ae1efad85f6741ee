"""DATA_DIR is the service's alone: mode 0700, its top-level files 0600.

It holds the SQLite database (every session's messages, events and screenshots), recordings,
uploads and the session homes; session users must not read any of it. The directory's own
mode is the barrier (nobody else can traverse it, whatever the modes below); files directly in
it, the database and its WAL/SHM companions among them, are made 0600 too. Session homes
inside belong to their session users (mounted into each session's namespace, never reached
through DATA_DIR).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

DIR_MODE = 0o700
FILE_MODE = 0o600


def prepare_data_dir(path: Path) -> None:
    """Create DATA_DIR (and parents) or tighten an existing one; idempotent."""
    path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    os.chmod(path, DIR_MODE)
    for entry in os.scandir(path):
        if entry.is_file(follow_symlinks=False):
            with contextlib.suppress(FileNotFoundError):
                os.chmod(entry.path, FILE_MODE)


def private_file(path: Path) -> None:
    """Create `path` (0600) if missing, else make it 0600; SQLite gives its WAL and SHM files
    the database file's mode, so creating the database this way covers them."""
    path.parent.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, FILE_MODE)
    try:
        os.fchmod(fd, FILE_MODE)
    finally:
        os.close(fd)
    for suffix in ("-wal", "-shm", "-journal"):
        with contextlib.suppress(FileNotFoundError):
            os.chmod(f"{path}{suffix}", FILE_MODE)
