"""A session's private mount namespace: what its programs see of the host's filesystem.

The namespace is held open by a `sleep` process (killed with the server) and gets, on top of
the host's tree (slave propagation, see filesystem.py):

- `/home/user`: the session's merged home (the same path for every session),
- `/tmp`, `/var/tmp`, `/dev/shm`: private, size-capped tmpfs that exist only in this
  namespace, so nothing a session writes there survives it or reaches another session
  (tmpfs pages are charged to the writer's memory cgroup: they count in the session's
  memory limit). `/tmp/.X11-unix` is the session's own, so a file planted there cannot
  shadow another display's socket; it holds the link by which the session's X clients
  reach their display (xalias.py),
- `/run`: an empty tmpfs with only the session's runtime directory (cookie, VNC socket) and
  the resolver's directory put back: the host's unix sockets (PostgreSQL, D-Bus, Docker,
  systemd, ...) are not reachable by path,
- `/proc`: a fresh procfs with `hidepid=2`: a session sees only its own processes,
- every unix socket file the host listens on elsewhere (a daemon's under /var/lib, say)
  covered with /dev/null, so connecting to it is refused.
"""

from __future__ import annotations

import asyncio
import ctypes
import errno
import os
from dataclasses import dataclass
from pathlib import Path
from subprocess import DEVNULL

from computer_use.desktops.process import (
    HELPER_TIMEOUT,
    LIBC,
    CommandError,
    SandboxError,
    kill_process_group,
    poll_until,
    run_command,
    tool,
)
from computer_use.desktops.sockets import listening_names

SANDBOX_HOME = "/home/user"
X11_SOCKET_DIR = "/tmp/.X11-unix"
# The private directories live in RAM; the caps keep one session from eating the host's memory
# (and their pages count in the session's memory cgroup anyway).
PRIVATE_TMP_OPTIONS = "mode=1777,size=512m,nosuid,nodev"
PRIVATE_SCRATCH_OPTIONS = "mode=1777,size=256m,nosuid,nodev"
PRIVATE_SCRATCH_DIRS = ("/var/tmp", "/dev/shm")
PRIVATE_RUN_OPTIONS = "mode=755,size=1m,nosuid,nodev,noexec"
RUN_DIR = Path("/run")
RESOLV_CONF = Path("/etc/resolv.conf")
# hidepid=2 is "invisible" under its pre-5.8 name: other users' /proc/<pid> do not exist.
PRIVATE_PROC_OPTIONS = "hidepid=2,nosuid,nodev,noexec"


CLONE_NEWNS = 0x00020000


def open_namespace(holder_pid: int) -> int:
    """A descriptor of the holder's mount namespace, for `enter` (the caller closes it)."""
    return os.open(f"/proc/{holder_pid}/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)


def enter(namespace_fd: int) -> None:
    """Move the calling process into the mount namespace (a preexec_fn step: the forked
    child is single-threaded and still root, as setns(CLONE_NEWNS) requires)."""
    if LIBC.setns(namespace_fd, CLONE_NEWNS) != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"setns: {errno.errorcode.get(code, code)}")


@dataclass(frozen=True)
class Namespace:
    holder: asyncio.subprocess.Process
    proc_hidden_reason: str | None  # None when /proc shows only the session's processes
    run_hidden_reason: str | None  # None when the host's /run (its sockets) is hidden


async def start_namespace(
    home: Path, runtime_dir: Path | None, x_alias: tuple[int, int] | None = None
) -> Namespace:
    """The holder of a new mount namespace set up as the module says. `x_alias` (alias,
    display): `/tmp/.X11-unix/X<alias>` is a root-owned link to the display's socket."""
    ensure_host_dir(Path(SANDBOX_HOME), 0o755)
    holder = await asyncio.create_subprocess_exec(
        tool("setpriv"),
        "--pdeathsig=KILL",  # the holder must not outlive the server
        "--",
        tool("unshare"),
        "--mount",
        "--propagation=slave",
        "--",
        tool("sleep"),
        "infinity",
        stdin=DEVNULL,
        stdout=DEVNULL,
        stderr=DEVNULL,
        start_new_session=True,
    )
    try:
        # unshare sets the propagation *after* creating the namespace; a mount made before it
        # execs sleep could leak back to the host.
        await poll_until(
            lambda: holder.returncode is not None or comm(holder.pid) == "sleep",
            timeout=HELPER_TIMEOUT,
            what="the namespace holder to start",
        )
        if holder.returncode is not None:
            raise SandboxError(f"namespace holder exited with {holder.returncode}")
        enter = [tool("nsenter"), f"--target={holder.pid}", "--mount", "--"]
        await _private_tmp_and_home(enter, home, x_alias)
        for directory in PRIVATE_SCRATCH_DIRS:
            if os.path.isdir(directory):  # noqa: ASYNC240 (a stat of /var/tmp, /dev/shm)
                await run_command(
                    [*enter, tool("mount"), "-t", "tmpfs", "-o", PRIVATE_SCRATCH_OPTIONS,
                     "session-scratch", directory]
                )  # fmt: skip
        run_hidden_reason = await _private_run(enter, runtime_dir)
        await _mask_host_sockets(enter)
        # Some container runtimes refuse a new procfs: the session still works, with the
        # host's /proc (health says so).
        proc = await run_command(
            [*enter, tool("mount"), "-t", "proc", "-o", PRIVATE_PROC_OPTIONS, "proc", "/proc"],
            check=False,
        )
        proc_hidden_reason = None
        if proc.returncode != 0:
            proc_hidden_reason = f"mount proc: {proc.stderr.decode(errors='replace').strip()}"
    except BaseException:
        kill_process_group(holder.pid)
        await holder.wait()
        raise
    return Namespace(holder, proc_hidden_reason, run_hidden_reason)


async def _private_tmp_and_home(
    enter: list[str], home: Path, x_alias: tuple[int, int] | None
) -> None:
    # /home/user (an empty directory on the host) is the staging area: the tmpfs gets its X11
    # directory and the home inside it *before* it covers /tmp, because the session's home
    # may itself live under the host's /tmp.
    stage = SANDBOX_HOME
    mount = [*enter, tool("mount")]
    await run_command([*mount, "-t", "tmpfs", "-o", PRIVATE_TMP_OPTIONS, "session-tmp", stage])
    # Root's, sticky and world-writable, as X servers expect; the session's own.
    await run_command([*enter, tool("mkdir"), "-m", "1777", f"{stage}/.X11-unix"])
    if x_alias is not None:  # sticky directory, root's link: the session cannot replace it
        alias, display = x_alias
        link = [tool("ln"), "-s", f"X{display}", f"{stage}/.X11-unix/X{alias}"]
        await run_command([*enter, *link])
    await run_command([*mount, "--mkdir", "--bind", str(home), f"{stage}/.home"])
    await run_command([*mount, "--move", stage, "/tmp"])
    await run_command([*mount, "--move", "/tmp/.home", SANDBOX_HOME])
    await run_command([*enter, tool("rmdir"), "/tmp/.home"])


async def _private_run(enter: list[str], runtime_dir: Path | None) -> str | None:
    """Cover /run with an empty tmpfs, putting back only what the session needs. Returns
    None on success, else why the host's /run stays visible."""
    keep: list[Path] = []
    if runtime_dir is not None:
        if not _is_under(runtime_dir, RUN_DIR):
            return f"the runtime directory {runtime_dir} is not under {RUN_DIR}"
        keep.append(runtime_dir)
    resolv = RESOLV_CONF.resolve()  # noqa: ASYNC240 (one readlink)
    if _is_under(resolv, RUN_DIR):  # e.g. systemd-resolved's stub-resolv.conf
        keep.append(resolv.parent)
    mount = [*enter, tool("mount")]
    try:
        # Staged under the private /tmp, which no other session sees.
        staged = [f"/tmp/.run-keep-{i}" for i in range(len(keep))]
        for source, stage in zip(keep, staged, strict=True):
            await run_command([*mount, "--mkdir", "--rbind", str(source), stage])
        await run_command([*mount, "-t", "tmpfs", "-o", PRIVATE_RUN_OPTIONS, "session-run", "/run"])
        for target, stage in zip(keep, staged, strict=True):
            await run_command([*enter, tool("mkdir"), "-p", str(target)])
            await run_command([*mount, "--move", stage, str(target)])
            await run_command([*enter, tool("rmdir"), stage])
        await run_command([*mount, "-o", "remount,ro,bind", "/run"])
    except CommandError as exc:
        raise SandboxError(f"cannot hide the host's /run: {exc}") from exc
    return None


async def probe_private_proc() -> str | None:
    """None if a session's namespace can get a private /proc here, else why not."""
    return await _probe_mount("-t", "proc", "-o", PRIVATE_PROC_OPTIONS, "proc", "/proc")


async def probe_private_run() -> str | None:
    """None if a session's namespace can cover the host's /run here, else why not."""
    return await _probe_mount("-t", "tmpfs", "-o", PRIVATE_RUN_OPTIONS, "session-run", "/run")


async def _probe_mount(*args: str) -> str | None:
    if os.geteuid() != 0:
        return "not root"
    try:
        argv = [tool("unshare"), "--mount", "--propagation=private", "--", tool("mount")]
        result = await run_command([*argv, *args], check=False)
    except (SandboxError, OSError) as exc:
        return str(exc)
    if result.returncode != 0:
        return f"mount {args[1]}: {result.stderr.decode(errors='replace').strip()}"
    return None


def comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def ensure_host_dir(path: Path, mode: int) -> None:
    if not path.is_dir():
        path.mkdir(parents=True, exist_ok=True)
        os.chmod(path, mode)  # not subject to the umask, unlike mkdir's mode


async def _mask_host_sockets(enter: list[str]) -> None:
    """Cover every unix socket the host listens on outside the private directories (say a
    daemon's under /var/lib) with /dev/null: connecting there is refused. Sockets a host
    program creates after the session started are not covered (keep daemons' in /run)."""
    private = (Path("/tmp"), RUN_DIR, Path(SANDBOX_HOME))
    for path in sorted(await asyncio.to_thread(_host_socket_paths)):
        if not any(_is_under(path, root) for root in private):
            # check=False: the file may be gone while its socket lives on.
            await run_command([*enter, tool("mount"), "--bind", "/dev/null", str(path)],
                              check=False)  # fmt: skip


def _host_socket_paths() -> set[Path]:
    """Where the host's listening path sockets are (resolved), from /proc/net/unix."""
    found: set[Path] = set()
    for name in listening_names():
        if name.startswith("/"):
            try:
                found.add(Path(name).resolve(strict=True))
            except OSError:
                continue
    return found


def _is_under(path: Path, root: Path) -> bool:
    return path == root or root in path.parents
