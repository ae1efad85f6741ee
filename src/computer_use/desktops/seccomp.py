"""The seccomp filter every program of a session runs under.

A small classic-BPF program, built once, installed with `prctl(PR_SET_SECCOMP)` in the child
between fork and its first exec (`install`, a `preexec_fn`), so nothing a session runs ever
starts without it; it is inherited by every fork and kept across exec.

It denies (EPERM) what a desktop never needs and what widens the kernel's attack surface:
new namespaces (`unshare`, `clone` with a CLONE_NEW* flag: `unshare -r` fails), mounting,
tracing other processes, kernel modules and kexec, BPF, perf events, userfaultfd, keyrings,
io_uring, file handles, raw I/O ports, swap, reboot, clocks. `clone3` answers ENOSYS (its
flags live in memory a filter cannot read), so libc falls back to `clone`, which is checked.
Foreign ABIs (i386 `int 0x80`, x32) answer ENOSYS for every call.

`setns` is denied too: the launcher enters the session's namespace before the filter.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import functools
import platform
import struct

from computer_use.desktops.process import LIBC

PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2
SECCOMP_RET_ALLOW = 0x7FFF0000
SECCOMP_RET_ERRNO = 0x00050000
_LD_W_ABS = 0x20
_JEQ_K = 0x15
_JGE_K = 0x35
_JSET_K = 0x45
_RET_K = 0x06
_NR, _ARCH, _ARG0_LOW = 0, 4, 16  # offsets in struct seccomp_data (little-endian)
X32_SYSCALL_BIT = 0x40000000

# CLONE_NEWNS | NEWCGROUP | NEWUTS | NEWIPC | NEWUSER | NEWPID | NEWNET (NEWTIME is only
# valid in unshare/clone3, and its bit is the exit signal's in clone).
CLONE_NEW_FLAGS = 0x00020000 | 0x02000000 | 0x04000000 | 0x08000000 | 0x10000000
CLONE_NEW_FLAGS |= 0x20000000 | 0x40000000

# Syscall numbers on (x86_64, aarch64); None: the call does not exist on that machine.
# `clone` is checked by its flags and `clone3` answers ENOSYS; the others are DENIED.
_SYSCALLS: dict[str, tuple[int | None, int | None]] = {
    "clone": (56, 220),
    "clone3": (435, 435),
    "unshare": (272, 97),
    "setns": (308, 268),
    "mount": (165, 40),
    "umount2": (166, 39),
    "pivot_root": (155, 41),
    "chroot": (161, 51),
    "move_mount": (429, 429),
    "open_tree": (428, 428),
    "fsopen": (430, 430),
    "fsconfig": (431, 431),
    "fsmount": (432, 432),
    "mount_setattr": (442, 442),
    "ptrace": (101, 117),
    "process_vm_readv": (310, 270),
    "process_vm_writev": (311, 271),
    "kexec_load": (246, 104),
    "kexec_file_load": (320, 294),
    "init_module": (175, 105),
    "finit_module": (313, 273),
    "delete_module": (176, 106),
    "bpf": (321, 280),
    "perf_event_open": (298, 241),
    "userfaultfd": (323, 282),
    "keyctl": (250, 219),
    "add_key": (248, 217),
    "request_key": (249, 218),
    "io_uring_setup": (425, 425),
    "io_uring_enter": (426, 426),
    "io_uring_register": (427, 427),
    "open_by_handle_at": (304, 265),
    "name_to_handle_at": (303, 264),
    "iopl": (172, None),
    "ioperm": (173, None),
    "swapon": (167, 224),
    "swapoff": (168, 225),
    "reboot": (169, 142),
    "acct": (163, 89),
    "quotactl": (179, 60),
    "syslog": (103, 116),
    "settimeofday": (164, 170),
    "clock_settime": (227, 112),
    "adjtimex": (159, 171),
    "clock_adjtime": (305, 266),
    "vhangup": (153, 58),
}
DENIED = tuple(name for name in _SYSCALLS if name not in ("clone", "clone3"))

# (audit arch, syscall numbers) per machine, one column of _SYSCALLS each.
_ARCHES: dict[str, tuple[int, dict[str, int]]] = {
    machine: (audit_arch, {n: nr for n, nrs in _SYSCALLS.items() if (nr := nrs[i]) is not None})
    for i, (machine, audit_arch) in enumerate((("x86_64", 0xC000003E), ("aarch64", 0xC00000B7)))
}


def _insn(code: int, k: int, jt: int = 0, jf: int = 0) -> bytes:
    return struct.pack("=HBBI", code, jt, jf, k)


def build_filter(machine: str) -> bytes:
    """The BPF program (struct sock_filter[]) for `machine`; KeyError if unsupported."""
    arch, numbers = _ARCHES[machine]
    eperm = SECCOMP_RET_ERRNO | errno.EPERM
    enosys = SECCOMP_RET_ERRNO | errno.ENOSYS
    # Tail, from the end: [.. denied checks] clone check, allow, eperm, enosys.
    denied = [numbers[name] for name in DENIED if name in numbers]
    prog: list[bytes] = []
    prog.append(_insn(_LD_W_ABS, _ARCH))
    # Offsets are filled relative to the fixed tail laid out below.
    body: list[tuple[str, int, int]] = []  # (kind, value, extra)
    for nr in denied:
        body.append(("deny", nr, 0))
    body.append(("enosys", numbers["clone3"], 0))
    # Layout: 0 ld arch; 1 jeq arch ? next : ENOSYS; 2 ld nr; 3 jge x32 ? ENOSYS : next;
    # then one jeq per entry; then clone: jeq clone ? next : ALLOW; ld arg0; jset ? EPERM :
    # ALLOW; ALLOW; EPERM; ENOSYS.
    n_body = len(body)
    header = 4
    clone_at = header + n_body
    allow_at = clone_at + 3
    eperm_at, enosys_at = allow_at + 1, allow_at + 2

    def jump(at: int, target: int) -> int:
        return target - at - 1

    prog.append(_insn(_JEQ_K, arch, 0, jump(1, enosys_at)))
    prog.append(_insn(_LD_W_ABS, _NR))
    x32 = X32_SYSCALL_BIT if machine == "x86_64" else 0xFFFFFFFF
    prog.append(_insn(_JGE_K, x32, jump(3, enosys_at), 0))
    for i, (kind, nr, _) in enumerate(body):
        at = header + i
        target = eperm_at if kind == "deny" else enosys_at
        prog.append(_insn(_JEQ_K, nr, jump(at, target), 0))
    prog.append(_insn(_JEQ_K, numbers["clone"], 0, jump(clone_at, allow_at)))
    prog.append(_insn(_LD_W_ABS, _ARG0_LOW))
    prog.append(_insn(_JSET_K, CLONE_NEW_FLAGS, jump(clone_at + 2, eperm_at), 0))
    prog.append(_insn(_RET_K, SECCOMP_RET_ALLOW))
    prog.append(_insn(_RET_K, eperm))
    prog.append(_insn(_RET_K, enosys))
    return b"".join(prog)


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


@functools.cache
def _prepared() -> tuple[ctypes.CDLL, _SockFprog, ctypes.Array[ctypes.c_char]] | None:
    """Everything install() needs, made in the parent (the child only calls prctl)."""
    try:
        program = build_filter(platform.machine())
    except KeyError:
        return None
    libc = LIBC
    buffer = ctypes.create_string_buffer(program, len(program))
    fprog = _SockFprog(len(program) // 8, ctypes.cast(buffer, ctypes.c_void_p))
    return libc, fprog, buffer


def reason_off() -> str | None:
    """None when the filter can be used here, else why not."""
    if _prepared() is None:
        return f"no syscall table for {platform.machine()}"
    try:
        with open("/proc/self/status", encoding="utf-8") as status:
            if not any(line.startswith("Seccomp:") for line in status):
                return "the kernel has no seccomp support"
    except OSError as exc:
        return str(exc)
    return None


def enabled() -> bool:
    return reason_off() is None


def install() -> None:
    """Install the filter on the calling process (a preexec_fn: runs in the forked child)."""
    prepared = _prepared()
    if prepared is None:
        raise OSError(errno.ENOSYS, "no seccomp filter for this machine")
    libc, fprog, _buffer = prepared
    if libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(fprog), 0, 0) != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"prctl(PR_SET_SECCOMP): {errno.errorcode.get(code, code)}")
