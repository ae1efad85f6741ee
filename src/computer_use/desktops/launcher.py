"""The one door through which every program of a session starts.

In `namespace` mode (we are root and the session has a dedicated user) each session gets a
private mount namespace, held open by a `sleep` process, in which:

- the session's merged home is bind-mounted at `/home/user` (the same path for every session),
- `/tmp` is a private, size-capped tmpfs that exists only inside the namespace (so no host
  directory has to be protected), with the host's `/tmp/.X11-unix` bind-mounted into it so X
  clients still find their display's socket,
- `/proc` is a fresh procfs with `hidepid=2`: a session sees (and can name) only its own
  processes; signalling another session's fails anyway (different uid: EPERM).

With a `SessionCgroup` (limits.py) every program is moved into the session's cgroup (memory
and task caps) by a `sh` that then execs nsenter: nothing the program forks starts outside.

Each program then starts as
`nsenter --target <holder> --mount -- setpriv --reuid U ... -- env --chdir DIR -- argv`:
every helper execs rather than forks, so the pid handed back is the program itself, and
spawn() returns once that process has entered the namespace and dropped to the user. The
holder dies with the server (PR_SET_PDEATHSIG); the session's programs do not, and are
killed by uid (`kill_user_processes`) on close or on the next start.

The namespace gets slave propagation: when the host unmounts another session's home, the copy
this namespace inherited at birth goes away too and cannot pin that session's loop device
(`filesystem.py` makes the sessions directory a shared mount for exactly this reason).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import pwd
import re
import shutil
import signal
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from subprocess import DEVNULL, PIPE
from typing import TYPE_CHECKING, Literal

from computer_use.agent.desktop import CommandResult
from computer_use.desktops.errors import DesktopError

if TYPE_CHECKING:
    from computer_use.desktops.limits import SessionCgroup
    from computer_use.desktops.users import SessionUser

logger = logging.getLogger(__name__)

__all__ = [
    "SANDBOX_HOME",
    "CommandError",
    "CommandResult",
    "SandboxError",
    "SandboxMode",
    "SessionSandbox",
    "run_command",
]

SandboxMode = Literal["namespace", "user", "direct"]

SANDBOX_HOME = "/home/user"
DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"
X11_SOCKET_DIR = "/tmp/.X11-unix"
# The private /tmp lives in RAM; the cap keeps one session from eating the host's memory.
PRIVATE_TMP_OPTIONS = "mode=1777,size=512m,nosuid,nodev"
# hidepid=2 is "invisible" under its pre-5.8 name: other users' /proc/<pid> do not exist.
PRIVATE_PROC_OPTIONS = "hidepid=2,nosuid,nodev,noexec"
HELPER_TIMEOUT = 10.0
# After run()'s process exits, a background child may keep its pipes open: don't wait forever.
OUTPUT_GRACE = 1.0
KILL_DEADLINE = 5.0


class CommandError(DesktopError):
    """A host-side helper (mount, useradd, ...) failed or hung."""

    def __init__(self, argv: Sequence[str], result: CommandResult) -> None:
        self.argv = list(argv)
        self.result = result
        detail = "timed out" if result.timed_out else f"exited {result.returncode}"
        stderr = result.stderr.decode(errors="replace").strip()
        super().__init__(f"{' '.join(argv)}: {detail}" + (f": {stderr}" if stderr else ""))


class SandboxError(DesktopError):
    """The session's sandbox could not be created or is no longer usable."""


async def run_command(
    argv: Sequence[str],
    *,
    timeout: float = HELPER_TIMEOUT,
    check: bool = True,
    input: bytes | None = None,
) -> CommandResult:
    """Run a host-side helper as ourselves; its process group is killed on timeout."""
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=PIPE if input is not None else DEVNULL,
        stdout=PIPE,
        stderr=PIPE,
        start_new_session=True,
    )
    result = await collect(proc, timeout=timeout, input=input)
    if check and (result.timed_out or result.returncode != 0):
        raise CommandError(argv, result)
    return result


async def collect(
    proc: asyncio.subprocess.Process,
    *,
    timeout: float,
    input: bytes | None = None,
) -> CommandResult:
    """Wait for `proc` (a process group leader), feeding `input` and gathering its output.

    If the caller is cancelled, the process group is killed: nothing outlives its command.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    readers = [asyncio.ensure_future(_read_all(s)) for s in (proc.stdout, proc.stderr)]
    timed_out = False
    try:
        if proc.stdin is not None:
            # A program that exits without reading its input is not an error.
            with contextlib.suppress(BrokenPipeError, ConnectionResetError, TimeoutError):
                if input:
                    proc.stdin.write(input)
                    await asyncio.wait_for(proc.stdin.drain(), timeout)
            proc.stdin.close()
        try:
            await asyncio.wait_for(proc.wait(), timeout=max(deadline - loop.time(), 0.0))
        except TimeoutError:
            timed_out = True
            kill_process_group(proc.pid)
            await proc.wait()
        grace = 0.2 if timed_out else min(OUTPUT_GRACE, max(deadline - loop.time(), 0.0))
        await asyncio.wait(readers, timeout=grace)
    except BaseException:
        kill_process_group(proc.pid)
        raise
    finally:
        for reader in readers:
            reader.cancel()
    stdout, stderr = (r.result() if r.done() and not r.cancelled() else b"" for r in readers)
    return CommandResult(
        returncode=None if timed_out else proc.returncode,
        stdout=stdout,
        stderr=stderr,
        timed_out=timed_out,
    )


async def _read_all(stream: asyncio.StreamReader | None) -> bytes:
    return b"" if stream is None else await stream.read()


def kill_process_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def live_pids_of_uid(uid: int) -> list[int]:
    """Pids whose real uid is `uid`; zombies are already dead and are left to their parent."""
    pids: list[int] = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/status", encoding="utf-8", errors="replace") as f:
                status = dict(line.split(":", 1) for line in f.read().splitlines() if ":" in line)
        except OSError:
            continue  # exited while we looked
        if status.get("State", "").strip().startswith("Z"):
            continue
        if int(status.get("Uid", "-1").split()[0]) == uid:
            pids.append(int(entry.name))
    return pids


async def poll_until(
    check: Callable[[], bool],
    *,
    timeout: float,
    what: str,
) -> None:
    """Wait for a condition the kernel gives us no event for, with a deadline."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    delay = 0.001
    while not check():
        if loop.time() >= deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.05)


@functools.cache
def _tool(name: str) -> str:
    path = shutil.which(name, path=os.environ.get("PATH", DEFAULT_PATH) + ":/usr/sbin:/sbin")
    if path is None:
        raise SandboxError(f"{name} not found: install util-linux / procps")
    return path


def _switch_user(user: SessionUser) -> list[str]:
    # --no-new-privs: a session must not regain root through a setuid binary (sudo, su, ...).
    return [
        _tool("setpriv"),
        f"--reuid={user.uid}",
        f"--regid={user.gid}",
        "--clear-groups",
        "--no-new-privs",
        "--",
    ]


class SessionSandbox:
    """Everything of one session runs through here: as the session's user, in a private mount
    namespace where the session's home is bind-mounted at /home/user (same path for every
    session) and /tmp is private (but /tmp/.X11-unix is the host's, so X sockets work).

    Modes: `namespace` (root with a session user: the above), `user` (root but namespaces are
    refused: user switch only, HOME is the host path), `direct` (not root or no user: runs as
    ourselves, HOME is the host path, a private TMPDIR).
    """

    def __init__(
        self,
        *,
        session_id: str,
        user: SessionUser | None,
        home: Path,
        mode: SandboxMode,
        holder: asyncio.subprocess.Process | None = None,
        tmpdir: Path | None = None,
        cgroup: SessionCgroup | None = None,
        proc_hidden_reason: str | None = "no private mount namespace",
    ) -> None:
        self.session_id = session_id
        self.user = user
        self.home = home
        self.mode: SandboxMode = mode
        self.cgroup = cgroup
        # None when /proc shows only the session's own processes; else why it does not.
        self.proc_hidden_reason = proc_hidden_reason
        self.home_path = SANDBOX_HOME if mode == "namespace" else str(home)
        self._holder = holder
        self._tmpdir = tmpdir
        self._procs: set[asyncio.subprocess.Process] = set()
        self._closed = False
        # Runs in each program's child before exec (ksm.py: marks it mergeable).
        self.preexec: Callable[[], None] | None = None

    @classmethod
    async def create(
        cls,
        *,
        session_id: str,
        user: SessionUser | None,
        home: Path,
        cgroup: SessionCgroup | None = None,
    ) -> SessionSandbox:
        """`cgroup` (created by the caller, emptied and removed by close()) caps resources."""
        if user is None or os.geteuid() != 0:
            if user is not None and user.uid != os.getuid():
                logger.warning("not root: session %s runs as uid %d", session_id, os.getuid())
            tmpdir = _private_tmpdir(session_id)
            return cls(session_id=session_id, user=None, home=home, mode="direct", tmpdir=tmpdir)
        if user.uid == 0:
            raise SandboxError("refusing to run a session as root")
        try:
            holder, proc_hidden_reason = await _start_namespace(home)
        except (CommandError, SandboxError, TimeoutError, OSError) as exc:
            logger.warning(
                "session %s: no private mount namespace (%s); HOME is the host path",
                session_id,
                exc,
            )
            tmpdir = _private_tmpdir(session_id)
            os.chown(tmpdir, user.uid, user.gid)
            return cls(
                session_id=session_id,
                user=user,
                home=home,
                mode="user",
                tmpdir=tmpdir,
                cgroup=cgroup,
            )
        logger.debug("session %s: namespace held by pid %d", session_id, holder.pid)
        return cls(
            session_id=session_id,
            user=user,
            home=home,
            mode="namespace",
            holder=holder,
            cgroup=cgroup,
            proc_hidden_reason=proc_hidden_reason,
        )

    @property
    def namespace_pid(self) -> int | None:
        """Pid of the process holding the mount namespace (for `nsenter`), if any."""
        return self._holder.pid if self._holder is not None else None

    def base_env(self) -> dict[str, str]:
        name = self.user.name if self.user else pwd.getpwuid(os.getuid()).pw_name
        return {
            "HOME": self.home_path,
            "USER": name,
            "LOGNAME": name,
            "PATH": DEFAULT_PATH,
            "LANG": "C.UTF-8",
            "SHELL": "/bin/bash",
            "TMPDIR": str(self._tmpdir) if self._tmpdir else "/tmp",
        }

    async def spawn(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        stdin: int | None = DEVNULL,
        stdout: int | None = DEVNULL,
        stderr: int | None = DEVNULL,
        cwd: str | None = None,
    ) -> asyncio.subprocess.Process:
        """Start `argv` in the sandbox, in its own process group. `cwd` is a sandbox path."""
        if self._closed:
            raise SandboxError(f"sandbox of session {self.session_id} is closed")
        if not argv:
            raise ValueError("empty argv")
        workdir = cwd or self.home_path
        host_cwd: str | None = None
        if self.mode == "direct":
            prefix: list[str] = []
            host_cwd = workdir
        else:
            assert self.user is not None
            if "=" in argv[0]:
                raise ValueError("the program name must not contain '=' (env would take it)")
            # The chdir happens last, as the user and inside the namespace: nsenter --wd would
            # resolve the path in *our* namespace (the empty /home/user under the mount).
            prefix = [*_switch_user(self.user), _tool("env"), f"--chdir={workdir}", "--"]
        if self.mode == "namespace":
            assert self._holder is not None
            if self._holder.returncode is not None:
                raise SandboxError(f"namespace holder of session {self.session_id} died")
            enter = [_tool("nsenter"), f"--target={self._holder.pid}", "--mount", "--"]
            prefix = [*enter, *prefix]
        if self.cgroup is not None and self.mode != "direct":
            prefix = [*self.cgroup.enter_argv(), *prefix]
        proc = await asyncio.create_subprocess_exec(
            *prefix,
            *argv,
            stdin=stdin,
            stdout=stdout,
            stderr=stderr,
            cwd=host_cwd,
            env={**self.base_env(), **(env or {})},
            # Not tied to our lifetime: session programs outlive a server crash (reconcile
            # kills them by uid); only the namespace holder dies with us.
            start_new_session=True,
            preexec_fn=self.preexec,
        )
        self._procs = {p for p in self._procs if p.returncode is None}
        self._procs.add(proc)  # from here on, close() kills it too
        try:
            if self.user is not None:
                # Until setpriv has run, the process is still root and (while nsenter has not
                # entered the namespace) depends on the holder: return once it is neither.
                uid = self.user.uid
                await poll_until(
                    lambda: proc.returncode is not None or _real_uid(proc.pid) == uid,
                    timeout=HELPER_TIMEOUT,
                    what=f"{argv[0]} to switch to {self.user.name}",
                )
            if self._closed:  # close() ran while we were starting it
                raise SandboxError(f"sandbox of session {self.session_id} is closed")
        except BaseException:
            kill_process_group(proc.pid)
            await asyncio.shield(proc.wait())
            raise
        return proc

    async def run(
        self,
        argv: Sequence[str],
        *,
        timeout: float,
        env: Mapping[str, str] | None = None,
        input: bytes | None = None,
    ) -> CommandResult:
        proc = await self.spawn(
            argv, env=env, stdin=PIPE if input is not None else DEVNULL, stdout=PIPE, stderr=PIPE
        )
        return await collect(proc, timeout=timeout, input=input)

    async def close(self) -> None:
        """Kill every process of the session and the namespace holder, and reap them."""
        if self._closed:
            return
        self._closed = True
        try:
            if self.user is not None:
                await self.kill_user_processes(self.user)
        finally:
            if self._holder is not None:
                self._procs.add(self._holder)
            for proc in self._procs:
                if proc.returncode is None:  # once reaped, its pid may belong to a stranger
                    kill_process_group(proc.pid)
            if self._procs:
                waits = [asyncio.ensure_future(p.wait()) for p in self._procs]
                _, stuck = await asyncio.wait(waits, timeout=KILL_DEADLINE)
                for wait in stuck:  # e.g. in uninterruptible sleep on a dead NFS server
                    wait.cancel()
                if stuck:
                    logger.error(
                        "session %s: %d processes ignore SIGKILL", self.session_id, len(stuck)
                    )
            self._procs.clear()
            if self.cgroup is not None:
                await asyncio.to_thread(self.cgroup.remove)
            if self._tmpdir is not None:
                await asyncio.to_thread(shutil.rmtree, self._tmpdir, True)

    @staticmethod
    async def kill_user_processes(user: SessionUser) -> None:
        """SIGKILL every process of a dedicated session user and wait until they are gone.

        The kill is `kill(-1)` issued *as that user*: the kernel does it under the tasklist
        lock, so a process forking in a loop cannot slip through the way it can from a /proc
        scan.
        """
        if user.uid in (0, os.getuid()):
            raise ValueError(f"refusing to kill every process of uid {user.uid}")
        killer = [*_switch_user(user), _tool("kill"), "-9", "-1"]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + KILL_DEADLINE
        while pids := await asyncio.to_thread(live_pids_of_uid, user.uid):
            if loop.time() >= deadline:
                raise SandboxError(f"processes of {user.name} survive SIGKILL: {pids}")
            # kill exits non-zero when nothing was left to kill; the /proc scan is the truth.
            await run_command(killer, check=False)
            with contextlib.suppress(TimeoutError):
                await poll_until(
                    lambda: not live_pids_of_uid(user.uid), timeout=0.5, what="processes to die"
                )
        logger.debug("no process of %s left", user.name)


async def _start_namespace(home: Path) -> tuple[asyncio.subprocess.Process, str | None]:
    """The holder of a new mount namespace, and why /proc is not private there (or None)."""
    _ensure_host_dir(Path(SANDBOX_HOME), 0o755)
    _ensure_host_dir(Path(X11_SOCKET_DIR), 0o1777)
    holder = await asyncio.create_subprocess_exec(
        _tool("setpriv"),
        "--pdeathsig=KILL",  # the holder must not outlive the server
        "--",
        _tool("unshare"),
        "--mount",
        "--propagation=slave",
        "--",
        _tool("sleep"),
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
            lambda: holder.returncode is not None or _comm(holder.pid) == "sleep",
            timeout=HELPER_TIMEOUT,
            what="the namespace holder to start",
        )
        if holder.returncode is not None:
            raise SandboxError(f"namespace holder exited with {holder.returncode}")
        enter = [_tool("nsenter"), f"--target={holder.pid}", "--mount", "--", _tool("mount")]
        # /home/user (an empty directory on the host) is the staging area: the tmpfs gets the
        # X11 bind and the home inside it *before* it covers /tmp, because the session's home
        # may itself live under the host's /tmp.
        stage = SANDBOX_HOME
        for args in (
            ["-t", "tmpfs", "-o", PRIVATE_TMP_OPTIONS, "session-tmp", stage],
            ["--mkdir", "--bind", X11_SOCKET_DIR, f"{stage}/.X11-unix"],
            ["--mkdir", "--bind", str(home), f"{stage}/.home"],
            ["--move", stage, "/tmp"],
            ["--move", "/tmp/.home", SANDBOX_HOME],
        ):
            await run_command([*enter, *args])
        await run_command([*enter[:-1], _tool("rmdir"), "/tmp/.home"])
        # Some container runtimes refuse a new procfs: the session still works, with the
        # host's /proc (health says so).
        proc = await run_command(
            [*enter, "-t", "proc", "-o", PRIVATE_PROC_OPTIONS, "proc", "/proc"], check=False
        )
        proc_hidden_reason = None
        if proc.returncode != 0:
            proc_hidden_reason = f"mount proc: {proc.stderr.decode(errors='replace').strip()}"
    except BaseException:
        kill_process_group(holder.pid)
        await holder.wait()
        raise
    return holder, proc_hidden_reason


async def probe_private_proc() -> str | None:
    """None if a session's namespace can get a private /proc here, else why not."""
    if os.geteuid() != 0:
        return "not root"
    try:
        argv = [_tool("unshare"), "--mount", "--propagation=private", "--", _tool("mount")]
        result = await run_command(
            [*argv, "-t", "proc", "-o", PRIVATE_PROC_OPTIONS, "proc", "/proc"], check=False
        )
    except (SandboxError, OSError) as exc:
        return str(exc)
    if result.returncode != 0:
        return f"mount proc: {result.stderr.decode(errors='replace').strip()}"
    return None


def _private_tmpdir(session_id: str) -> Path:
    """TMPDIR for sessions without a namespace (mode 0700, removed by close())."""
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", session_id)[:64]
    return Path(tempfile.mkdtemp(prefix=f"cu-{safe}-tmp-"))


def _real_uid(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("Uid:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def _ensure_host_dir(path: Path, mode: int) -> None:
    if not path.is_dir():
        path.mkdir(parents=True, exist_ok=True)
        os.chmod(path, mode)  # not subject to the umask, unlike mkdir's mode
