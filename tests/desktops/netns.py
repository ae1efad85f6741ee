"""A network namespace for egress tests: the only place such tests may send traffic to.

`egress_namespace()` creates it with one private and one public-looking address per family
(documentation ranges, reachable only through our veth pair and host routes to it), and a
TCP listener on ECHO_PORT inside; everything is removed afterwards. Names and ranges are
per CU_TEST_SLOT and pid, so suites running side by side do not collide.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
from collections.abc import Iterator

from tests import slots

SLOT = slots.SLOT
NS = f"cu{SLOT}-egress-{os.getpid()}"
HOST_IF, NS_IF = f"cu{SLOT}eh{os.getpid() % 10000}", f"cu{SLOT}en{os.getpid() % 10000}"
PRIVATE4, PUBLIC4 = f"10.{200 + SLOT}.77.2", f"203.0.113.{10 + SLOT}"
PRIVATE6, PUBLIC6 = f"fd00:77:{SLOT}::2", f"2001:db8:77:{SLOT}::2"
ECHO_PORT = 8077
# Both sockets listen before "ready" is printed (a connect right after it must not be refused).
LISTENER = """
import socket, sys, threading
def listening(family, host):
    s = socket.socket(family)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if family == socket.AF_INET6:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    s.bind((host, int(sys.argv[1])))
    s.listen(16)
    return s
def serve(s):
    while True:
        s.accept()[0].close()
for family, host in ((socket.AF_INET, "0.0.0.0"), (socket.AF_INET6, "::")):
    threading.Thread(target=serve, args=(listening(family, host),), daemon=True).start()
print("ready", flush=True)
sys.stdin.read()
"""


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=10)


@contextlib.contextmanager
def egress_namespace() -> Iterator[None]:
    _ip("netns", "add", NS)
    listener: subprocess.Popen[bytes] | None = None
    try:
        _ip("link", "add", HOST_IF, "type", "veth", "peer", "name", NS_IF)
        _ip("link", "set", NS_IF, "netns", NS)
        _ip("addr", "add", f"10.{200 + SLOT}.77.1/24", "dev", HOST_IF)
        _ip("-6", "addr", "add", f"fd00:77:{SLOT}::1/64", "dev", HOST_IF, "nodad")
        _ip("link", "set", HOST_IF, "up")
        for address in (f"{PRIVATE4}/24", f"{PUBLIC4}/32"):
            _ip("-n", NS, "addr", "add", address, "dev", NS_IF)
        for address in (f"{PRIVATE6}/64", f"{PUBLIC6}/128"):
            _ip("-n", NS, "-6", "addr", "add", address, "dev", NS_IF, "nodad")
        _ip("-n", NS, "link", "set", NS_IF, "up")
        _ip("-n", NS, "link", "set", "lo", "up")
        _ip("route", "add", f"{PUBLIC4}/32", "via", PRIVATE4)
        _ip("-6", "route", "add", f"{PUBLIC6}/128", "via", PRIVATE6)
        listener = subprocess.Popen(
            ["ip", "netns", "exec", NS, sys.executable, "-c", LISTENER, str(ECHO_PORT)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        assert listener.stdout is not None and listener.stdout.readline().strip() == b"ready"
        yield
    finally:
        if listener is not None:
            listener.kill()
            listener.wait()
        subprocess.run(["ip", "link", "del", HOST_IF], check=False, capture_output=True)
        subprocess.run(["ip", "netns", "del", NS], check=False, capture_output=True)


def connects(host: str) -> bool:
    """From the test process itself (the control: the address is reachable)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as s:
        s.settimeout(3)
        return s.connect_ex((host, ECHO_PORT)) == 0
