"""Firefox's startup cache and a set-up profile, prepared once per host and put into the base
home.

A profile's first Firefox start compiles the browser's own scripts and keeps them on the heap
while it records its startup cache (~/.cache/mozilla/firefox/<profile>/startupCache); later
starts map that cache from disk instead. Every session starts from a fresh copy of the base
home, so without a cache in the base each session's Firefox pays the first start: ~25 MiB more
private memory and a slower start (bench/density.py). So the service records the cache once,
with a headless Firefox on a scratch profile that has the sessions' user.js, keeps it per host
under CACHE_ROOT (keyed by Firefox's version and user.js), and copies it into the base home
with the profile's compatibility.ini (without which Firefox takes the cache for another
version's and throws it away). The cache's files stay root's (filesystem.py leaves them out
of the home's chown): every session's Firefox maps the base's copy, one page cache for all,
until it writes a cache of its own. Any failure only costs the first-start price, as before.

The same headless start leaves a profile Firefox has set up: its databases, add-on registry,
search engines. That profile, without what must differ between sessions (keys and
certificates, identifiers, telemetry state, the recording's tabs and window), goes into the
base home as the profile template; a session's first browser start copies it into its own
profile (display.py) and is spared most of a new profile's work (bench/density.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import tempfile
from pathlib import Path

from computer_use.desktops.display import FIREFOX, FIREFOX_ENV
from computer_use.desktops.filesystem import (
    FIREFOX_PROFILE,
    PROFILE_TEMPLATE,
    SHARED_STARTUP_CACHE,
)

logger = logging.getLogger(__name__)

CACHE_ROOT = Path("/var/cache/computer-use")
STARTUP_CACHE = SHARED_STARTUP_CACHE  # relative to the home
STAMP = ".computer-use-stamp"
RECORD_TIMEOUT = 90.0  # seconds for the headless start to write its cache (a busy host)
SETTLE_TIMEOUT = 20.0  # seconds after the first cache file, for the script cache
EXIT_TIMEOUT = 30.0
FORMAT = "2"  # of what is recorded: 2 adds the profile template
# Not in the template: locks; what the base home has already; the recording's tabs, window and
# crash state; keys, certificates and the NSS module list (it names the recording's path);
# telemetry state; the profile group's database (named by a hash, holds identifiers).
NOT_TEMPLATED = frozenset({
    "lock", ".parentlock", "user.js", "compatibility.ini", "sessionstore.jsonlz4",
    "sessionstore-backups", "sessionCheckpoints.json", "xulstore.json", "key4.db", "cert9.db",
    "pkcs11.txt", "logins.db", "logins.json", "crashes", "minidumps", "datareporting",
    "saved-telemetry-pings",
})  # fmt: skip
_GROUP_DB = re.compile(r"[0-9a-f]{8}\.sqlite(-wal|-shm|-journal)?")
# A UUID (telemetry and Nimbus IDs, moz-extension UUIDs): prefs.js lines with one stay out.
IDENTIFIER = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.I)


def stamp_for(user_js: str) -> str:
    version = subprocess.run(
        [FIREFOX, "--version"], capture_output=True, text=True, timeout=30, check=False
    ).stdout.strip()
    return hashlib.sha256(f"{FORMAT}\n{version}\n{user_js}".encode()).hexdigest()[:16]


async def install(base_home: Path) -> bool:
    """Put a recorded startup cache into `base_home` unless the one there is current; True
    if the base home has a current cache afterwards."""
    user_js = (base_home / FIREFOX_PROFILE / "user.js").read_text()
    try:
        stamp = await asyncio.to_thread(stamp_for, user_js)
    except (OSError, subprocess.SubprocessError) as exc:
        logger.warning("no Firefox startup cache: %s", exc)
        return False
    target = base_home / STARTUP_CACHE
    with contextlib.suppress(OSError):
        if (target / STAMP).read_text() == stamp:
            return True
    recorded = CACHE_ROOT / f"firefox-{stamp}"
    if not (recorded / STAMP).exists():
        try:
            await _record(user_js, stamp, recorded)
        except (OSError, TimeoutError, RuntimeError) as exc:
            logger.warning("no Firefox startup cache (sessions start Firefox cold): %s", exc)
            return False
    await asyncio.to_thread(_copy_into, recorded, base_home)
    logger.info("Firefox startup cache %s in the base home", stamp)
    return True


def _copy_into(recorded: Path, base_home: Path) -> None:
    target = base_home / STARTUP_CACHE
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(recorded / "startupCache", target)
    # Under the names Firefox gives the script caches it has loaded: it maps these as they
    # are, where it would rename (and so copy into the session's layer) the others.
    for name in ("scriptCache", "scriptCache-child"):
        os.rename(target / f"{name}.bin", target / f"{name}-current.bin")
    for directory in (target, *target.parents):
        if directory == base_home:
            break
        os.chmod(directory, 0o755)
    profile = base_home / FIREFOX_PROFILE
    shutil.copyfile(recorded / "compatibility.ini", profile / "compatibility.ini")
    template = base_home / PROFILE_TEMPLATE
    shutil.rmtree(template, ignore_errors=True)
    shutil.copytree(recorded / "profile-template", template, symlinks=True)
    for top, _dirs, filenames in os.walk(template):  # the sessions' users read it
        os.chmod(top, 0o755)
        for name in filenames:
            if not os.path.islink(path := os.path.join(top, name)):
                os.chmod(path, 0o644)
    (target / STAMP).write_text((recorded / STAMP).read_text())


async def _record(user_js: str, stamp: str, recorded: Path) -> None:
    await asyncio.to_thread(CACHE_ROOT.mkdir, mode=0o700, parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="firefox-", dir=CACHE_ROOT))
    try:
        profile = scratch / FIREFOX_PROFILE
        profile.mkdir(parents=True)
        (profile / "user.js").write_text(user_js)
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(scratch),
            "TMPDIR": str(scratch),
            "MOZ_HEADLESS": "1",
            **FIREFOX_ENV,
        }
        proc = await asyncio.create_subprocess_exec(
            FIREFOX, "--headless", "--profile", str(profile), "--no-remote", "about:blank",
            env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        cache = scratch / STARTUP_CACHE
        try:
            async with asyncio.timeout(RECORD_TIMEOUT):
                while not (cache / "startupCache.8.little").exists():
                    if proc.returncode is not None:
                        raise RuntimeError(f"headless Firefox exited with {proc.returncode}")
                    await asyncio.sleep(0.5)  # no event for "Firefox wrote a file"
            # The script cache is written once the startup has settled, or when Firefox quits
            # after that; quitting earlier leaves none. Give it the settling time, then quit.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(SETTLE_TIMEOUT):
                    while not (cache / "scriptCache.bin").exists():  # noqa: ASYNC110 (a file)
                        await asyncio.sleep(0.5)
            os.killpg(proc.pid, signal.SIGTERM)
            async with asyncio.timeout(EXIT_TIMEOUT):
                await proc.wait()
        finally:
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                await proc.wait()
        if not (cache / "scriptCache.bin").exists():
            raise RuntimeError("headless Firefox quit without writing its script cache")
        staged = scratch / "recorded"
        staged.mkdir()
        shutil.copytree(cache, staged / "startupCache")
        shutil.copyfile(profile / "compatibility.ini", staged / "compatibility.ini")
        await asyncio.to_thread(make_template, profile, staged / "profile-template")
        (staged / STAMP).write_text(stamp)
        with contextlib.suppress(OSError):  # another instance recorded it first: theirs will do
            staged.rename(recorded)
    finally:
        await asyncio.to_thread(shutil.rmtree, scratch, True)


def make_template(profile: Path, template: Path) -> None:
    """Copy what every session's profile may share from `profile` (Firefox has quit)."""
    template.mkdir()
    for entry in profile.iterdir():
        if entry.name in NOT_TEMPLATED or _GROUP_DB.fullmatch(entry.name):
            continue
        if entry.name == "prefs.js":  # without the prefs that hold a random identifier
            lines = entry.read_text().splitlines(keepends=True)
            kept = "".join(line for line in lines if not IDENTIFIER.search(line))
            (template / entry.name).write_text(kept)
        elif entry.is_dir() and not entry.is_symlink():
            shutil.copytree(entry, template / entry.name, symlinks=True)
        elif entry.is_file() and not entry.is_symlink():
            shutil.copyfile(entry, template / entry.name)
    for database in template.rglob("*.sqlite"):
        _compact(database)


def _compact(database: Path) -> None:
    """Fold the write-ahead log into the database and leave out its free pages: a 19 MiB
    template becomes 7 MiB, and every session's copy with it. As it was if SQLite cannot."""
    try:
        with contextlib.closing(sqlite3.connect(database, isolation_level=None)) as db:
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            db.execute("VACUUM")
    except sqlite3.Error as exc:
        logger.info("profile template: %s stays as Firefox left it (%s)", database.name, exc)
