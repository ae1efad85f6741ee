"""The one door through which every program of a session starts.

In `namespace` mode (we are root and the session has a dedicated user) each session gets a
private mount namespace (namespace.py: private home, /tmp, /var/tmp, /dev/shm, /run, /proc).

Every program's child, between fork and its first exec, enters the session's mount namespace
(setns on a descriptor of the holder's), then takes the session's Landlock scope (landlock.py:
no abstract unix socket but its own) and seccomp filter (seccomp.py), so nothing of the
session ever runs outside them. With a `SessionCgroup` (limits.py) it is then moved into the
session's cgroup (memory, task and CPU caps) by a `sh` that execs the rest: nothing the
program forks starts outside.

Each program then starts as `[sh -c <join cgroup>] setpriv --reuid U ... -- env --chdir DIR
-- argv`: every helper execs rather than forks, so the pid handed back is the program itself,
and spawn() returns once that process has dropped to the user. The
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
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from subprocess import DEVNULL, PIPE
from typing import TYPE_CHECKING, Literal

from computer_use.desktop_port import CommandResult
from computer_use.desktops import landlock, seccomp
from computer_use.desktops.namespace import SANDBOX_HOME, open_namespace, start_namespace
from computer_use.desktops.namespace import enter as namespace_enter
from computer_use.desktops.process import (
    HELPER_TIMEOUT,
    CommandError,
    SandboxError,
    collect,
    kill_process_group,
    live_pids_of_uid,
    poll_until,
    run_command,
    tool,
)

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
    "collect",
    "kill_process_group",
    "live_pids_of_uid",
    "poll_until",
    "run_command",
]

SandboxMode = Literal["namespace", "user", "direct"]

DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"
KILL_DEADLINE = 5.0


def _switch_user(user: SessionUser) -> list[str]:
    # --no-new-privs: a session must not regain root through a setuid binary (sudo, su, ...).
    return [
        tool("setpriv"),
        f"--reuid={user.uid}",
        f"--regid={user.gid}",
        "--clear-groups",
        "--no-new-privs",
        "--",
    ]


class SessionSandbox:
    """Everything of one session runs through here: as the session's user, in a private mount
    namespace (namespace.py) where the session's home is bind-mounted at /home/user (same
    path for every session) and /tmp, /var/tmp, /dev/shm and /run are private.

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
        run_hidden_reason: str | None = "no private mount namespace",
        scoped: bool = False,
    ) -> None:
        self.session_id = session_id
        # Programs run under the Landlock scope (landlock.py); needs the X alias (xalias.py).
        self.scoped = scoped
        self.user = user
        self.home = home
        self.mode: SandboxMode = mode
        self.cgroup = cgroup
        # None when /proc shows only the session's own processes; else why it does not.
        self.proc_hidden_reason = proc_hidden_reason
        # None when the host's /run (its unix sockets) is hidden; else why it is not.
        self.run_hidden_reason = run_hidden_reason
        self.home_path = SANDBOX_HOME if mode == "namespace" else str(home)
        self._holder = holder
        # Each program enters the namespace in its child before exec (namespace.enter).
        self._namespace_fd = open_namespace(holder.pid) if holder is not None else None
        self._tmpdir = tmpdir
        self._procs: set[asyncio.subprocess.Process] = set()
        self._closed = False
        # Runs in each program's child before exec (ksm.py: marks it mergeable).
        self.preexec: Callable[[], None] | None = None

    def _before_exec(self) -> Callable[[], None] | None:
        """What runs in each program's child before its first exec: the KSM mark (`preexec`,
        ksm.py), entering the session's mount namespace (before the Landlock scope, which
        would forbid opening the holder's namespace), the Landlock scope (landlock.py), then
        the seccomp filter (seccomp.py), last, so no step after it needs a call it blocks."""
        sandboxed = self.mode != "direct"
        fd = self._namespace_fd
        entering = functools.partial(namespace_enter, fd) if fd is not None else None
        scoped = landlock.install if self.scoped else None
        filtered = seccomp.install if sandboxed and seccomp.enabled() else None
        steps = [s for s in (self.preexec, entering, scoped, filtered) if s]
        if not steps:
            return None

        def run() -> None:
            for step in steps:
                step()

        return run

    @classmethod
    async def create(
        cls,
        *,
        session_id: str,
        user: SessionUser | None,
        home: Path,
        cgroup: SessionCgroup | None = None,
        runtime_dir: Path | None = None,
        x_alias: tuple[int, int] | None = None,
    ) -> SessionSandbox:
        """`cgroup` (created by the caller, emptied and removed by close()) caps resources;
        `runtime_dir` (under /run) is the one directory of the host's /run the session sees;
        `x_alias` (alias, display): the number its X clients use (xalias.py), which is what
        lets its programs run under the Landlock scope."""
        if user is None or os.geteuid() != 0:
            if user is not None and user.uid != os.getuid():
                logger.warning("not root: session %s runs as uid %d", session_id, os.getuid())
            tmpdir = _private_tmpdir(session_id)
            return cls(session_id=session_id, user=None, home=home, mode="direct", tmpdir=tmpdir)
        if user.uid == 0:
            raise SandboxError("refusing to run a session as root")
        try:
            namespace = await start_namespace(home, runtime_dir, x_alias)
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
        logger.debug("session %s: namespace held by pid %d", session_id, namespace.holder.pid)
        return cls(
            session_id=session_id,
            user=user,
            home=home,
            mode="namespace",
            holder=namespace.holder,
            cgroup=cgroup,
            proc_hidden_reason=namespace.proc_hidden_reason,
            run_hidden_reason=namespace.run_hidden_reason,
            scoped=x_alias is not None and landlock.enabled(),
        )

    @property
    def namespace_pid(self) -> int | None:
        """Pid of the process holding the mount namespace, if any."""
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
            # The chdir happens last, as the user and inside the namespace (where /home/user
            # is the session's home, not the host's empty directory).
            prefix = [*_switch_user(self.user), tool("env"), f"--chdir={workdir}", "--"]
        if self.mode == "namespace":
            assert self._holder is not None
            if self._holder.returncode is not None:
                raise SandboxError(f"namespace holder of session {self.session_id} died")
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
            preexec_fn=self._before_exec(),
            # Not tied to our lifetime: session programs outlive a server crash (reconcile
            # kills them by uid); only the namespace holder dies with us.
            start_new_session=True,
        )
        self._procs = {p for p in self._procs if p.returncode is None}
        self._procs.add(proc)  # from here on, close() kills it too
        try:
            if self.user is not None:
                # Until setpriv has run, the process is still root: return once it is not.
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
            if self._namespace_fd is not None:
                os.close(self._namespace_fd)
                self._namespace_fd = None
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
        killer = [*_switch_user(user), tool("kill"), "-9", "-1"]
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
