"""The program the files API runs *inside* a session's sandbox, as the session user.

Not imported by the service: files.py passes this file's source to the sandbox's Python
(`python3 -I -S -c SOURCE op home path`), so every read and write happens with the session's
own uid, mount namespace and cgroup, exactly like the agent's own programs. Standard library
only, and it must run on the oldest Python a desktop host has (Debian's 3.11).

Protocol: the first line on stdout is a JSON header; an error header (`{"error": code,
"message": ...}`) ends the program with status 2. `read` and `zip` stream the bytes after
it. `write` reads frames from stdin (4-byte big-endian length + data); a frame of length 0
commits. Without it (EOF, SIGTERM, a write error) the temporary file and every folder the
upload created are removed, so a failed upload leaves nothing behind.
"""

import contextlib
import errno
import json
import os
import secrets
import signal
import stat
import struct
import sys
import zipfile
from collections.abc import Callable
from types import FrameType
from typing import Any, BinaryIO

CHUNK = 256 * 1024
QUOTA_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


class Refused(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def header(obj: dict[str, object]) -> None:
    out = sys.stdout.buffer
    out.write(json.dumps(obj).encode() + b"\n")
    out.flush()


def inside(home: str, real: str) -> bool:
    return real == home or real.startswith(home + "/")


def resolve(home: str, rel: str) -> str:
    """The real path of HOME/rel, refused when it (through symlinks) leaves HOME."""
    real = os.path.realpath(os.path.join(home, rel))
    if not inside(home, real):
        raise Refused("outside_home", f"{rel or '.'} resolves outside the session's HOME")
    return real


def entry(path: str, name: str) -> dict[str, object]:
    st = os.lstat(path)
    if stat.S_ISLNK(st.st_mode):
        kind = "symlink"
    elif stat.S_ISDIR(st.st_mode):
        kind = "dir"
    elif stat.S_ISREG(st.st_mode):
        kind = "file"
    else:
        kind = "other"
    return {"name": name, "type": kind, "size": st.st_size, "modified": st.st_mtime}


def op_read(home: str, rel: str) -> None:
    real = resolve(home, rel)
    if not os.path.lexists(real):
        raise Refused("not_found", f"{rel} does not exist")
    if os.path.isdir(real):
        entries: list[dict[str, Any]] = []
        for name in sorted(os.listdir(real)):
            try:
                entries.append(entry(os.path.join(real, name), name))
            except OSError:
                continue  # removed while we listed
        entries.sort(key=lambda e: (e["type"] != "dir", e["name"].lower()))
        header({"type": "dir", "path": rel, "entries": entries})
        return
    if not os.path.isfile(real):
        raise Refused("not_a_file", f"{rel} is neither a file nor a folder")
    with open(real, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        header({"type": "file", "path": rel, "size": size})
        out = sys.stdout.buffer
        while chunk := f.read(CHUNK):
            out.write(chunk)
        out.flush()


def op_zip(home: str, rel: str) -> None:
    real = resolve(home, rel)
    if not os.path.isdir(real):
        raise Refused("not_a_directory", f"{rel or '.'} is not a folder")
    header({"type": "zip", "path": rel})
    # zipfile writes data descriptors on an unseekable stream: nothing is held in memory.
    with zipfile.ZipFile(sys.stdout.buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        for top, dirs, files in os.walk(real):  # symlinks are neither followed nor stored
            dirs.sort()
            for name in sorted(files):
                path = os.path.join(top, name)
                if not os.path.isfile(path) or os.path.islink(path):
                    continue
                arcname = os.path.relpath(path, real)
                try:
                    src = open(path, "rb")  # noqa: SIM115 (closed by the with below)
                except OSError:
                    continue
                with src, zf.open(zipfile.ZipInfo.from_file(path, arcname), "w") as dst:
                    while chunk := src.read(CHUNK):
                        dst.write(chunk)


def make_parents(home: str, parts: list[str], created: list[str]) -> str:
    current = home
    for part in parts:
        current = os.path.join(current, part)
        if os.path.islink(current):
            real = os.path.realpath(current)
            if not inside(home, real):
                raise Refused("outside_home", f"{part} is a link leading outside HOME")
            current = real
        if not os.path.lexists(current):
            os.mkdir(current)
            created.append(current)
        elif not os.path.isdir(current):
            raise Refused("not_a_directory", f"{part} exists and is not a folder")
    return current


def read_exact(stream: BinaryIO, n: int) -> bytes | None:
    data = b""
    while len(data) < n:
        more = stream.read(n - len(data))
        if not more:
            return None
        data += more
    return data


def op_write(home: str, rel: str) -> None:
    parts = rel.split("/")
    created: list[str] = []
    temp: str | None = None
    committed = False
    try:
        parent = make_parents(home, parts[:-1], created)
        target = os.path.join(parent, parts[-1])
        if os.path.islink(target) and not inside(home, os.path.realpath(target)):
            raise Refused("outside_home", f"{rel} is a link leading outside HOME")
        if os.path.isdir(target):
            raise Refused("is_a_directory", f"{rel} is a folder")
        temp = os.path.join(parent, f".{parts[-1][:200]}.upload-{secrets.token_hex(4)}")
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        size = 0
        stdin = sys.stdin.buffer
        with os.fdopen(fd, "wb") as out:
            while True:
                head = read_exact(stdin, 4)
                if head is None:
                    raise Refused("aborted", "the upload ended before it was complete")
                (length,) = struct.unpack(">I", head)
                if length == 0:
                    break
                data = read_exact(stdin, length)
                if data is None:
                    raise Refused("aborted", "the upload ended before it was complete")
                out.write(data)
                size += length
            out.flush()
            os.fsync(out.fileno())
        os.rename(temp, target)
        committed = True
        header({"type": "file", "path": rel, "size": size})
    except OSError as exc:
        if exc.errno in QUOTA_ERRNOS:
            raise Refused("quota", "the session's disk quota is full") from None
        raise
    finally:
        if not committed:
            if temp is not None:
                with contextlib.suppress(OSError):
                    os.unlink(temp)
            for path in reversed(created):
                with contextlib.suppress(OSError):
                    os.rmdir(path)


def op_delete(home: str, rel: str) -> None:
    if not rel:
        raise Refused("invalid_path", "HOME itself cannot be deleted")
    parent = resolve(home, os.path.dirname(rel))
    target = os.path.join(parent, os.path.basename(rel))
    if not os.path.lexists(target):
        raise Refused("not_found", f"{rel} does not exist")
    if os.path.isdir(target) and not os.path.islink(target):
        remove_tree(target)
    else:
        os.unlink(target)  # a link itself, never what it points to
    header({"type": "deleted", "path": rel})


def remove_tree(path: str) -> None:
    for top, dirs, files in os.walk(path, topdown=False):
        for name in files:
            os.unlink(os.path.join(top, name))
        for name in dirs:
            full = os.path.join(top, name)
            if os.path.islink(full):
                os.unlink(full)
            else:
                os.rmdir(full)
    os.rmdir(path)


OPS: dict[str, Callable[[str, str], None]] = {
    "read": op_read,
    "zip": op_zip,
    "write": op_write,
    "delete": op_delete,
}


def on_term(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(3)  # runs the finally blocks: an unfinished upload is removed


def main() -> None:
    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    op, home, rel = sys.argv[1], os.path.realpath(sys.argv[2]), sys.argv[3]
    try:
        OPS[op](home, rel)
    except Refused as exc:
        header({"error": exc.code, "message": exc.message})
        sys.exit(2)
    except PermissionError as exc:
        header({"error": "permission", "message": f"permission denied: {exc.filename}"})
        sys.exit(2)
    except FileNotFoundError as exc:
        header({"error": "not_found", "message": f"{exc.filename} does not exist"})
        sys.exit(2)
    except NotADirectoryError:
        header({"error": "not_a_directory", "message": f"a parent of {rel} is not a folder"})
        sys.exit(2)


if __name__ == "__main__":
    main()
