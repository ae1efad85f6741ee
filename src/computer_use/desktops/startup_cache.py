"""Firefox's startup cache, prepared once per host and put into the base home.

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
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

from computer_use.desktops.display import FIREFOX, FIREFOX_ENV
from computer_use.desktops.filesystem import FIREFOX_PROFILE, SHARED_STARTUP_CACHE

logger = logging.getLogger(__name__)

CACHE_ROOT = Path("/var/cache/computer-use")
STARTUP_CACHE = SHARED_STARTUP_CACHE  # relative to the home
STAMP = ".computer-use-stamp"
RECORD_TIMEOUT = 90.0  # seconds for the headless start to write its cache (a busy host)
SETTLE_TIMEOUT = 20.0  # seconds after the first cache file, for the script cache
EXIT_TIMEOUT = 30.0


def stamp_for(user_js: str) -> str:
    version = subprocess.run(
        [FIREFOX, "--version"], capture_output=True, text=True, timeout=30, check=False
    ).stdout.strip()
    return hashlib.sha256(f"{version}\n{user_js}".encode()).hexdigest()[:16]


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
        (staged / STAMP).write_text(stamp)
        with contextlib.suppress(OSError):  # another instance recorded it first: theirs will do
            staged.rename(recorded)
    finally:
        await asyncio.to_thread(shutil.rmtree, scratch, True)
