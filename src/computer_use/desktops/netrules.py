"""Network rules: session users cannot open connections to this host or to private networks.

One nftables table of ours (`inet computer_use`), one output chain per manager (named after
its user prefix, so a test suite's manager never touches a running server's chain). The chain
rejects every *new* connection a session uid opens through the loopback interface, which is
where every address of this host routes (127/8, ::1 and the host's own public addresses): the
service's port, other sessions' VNC ports, X over TCP, anything else listening locally.
Replies of sockets a session listens on (x11vnc answering the service's proxy) are not new
connections and pass. Traffic to other hosts never leaves through `lo`, so it is untouched.
The DNS resolvers named in /etc/resolv.conf (Docker's 127.0.0.11, a VPC's 10.x resolver)
stay reachable on port 53.

Egress (`EgressPolicy`): new connections of session users to loopback, link-local (cloud
metadata at 169.254.169.254), private, shared, multicast and reserved ranges, IPv4 and IPv6,
are rejected; the internet is reachable. `SESSION_EGRESS_DENY` adds ranges to the denied ones,
`SESSION_EGRESS_ALLOW` opens ranges inside them (say, a proxy at 10.0.0.5/32); neither can
open this host itself (the loopback rule comes first).
"""

from __future__ import annotations

import functools
import ipaddress
import logging
import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from computer_use.desktops.process import CommandError, run_command

logger = logging.getLogger(__name__)

TABLE = "computer_use"
FAMILY = "inet"
RESOLV_CONF = Path("/etc/resolv.conf")

DEFAULT_DENY = (
    "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16",
    "172.16.0.0/12", "192.0.0.0/24", "192.168.0.0/16", "198.18.0.0/15", "224.0.0.0/4",
    "240.0.0.0/4", "::/128", "::1/128", "::ffff:0:0/96", "fc00::/7", "fe80::/10", "ff00::/8",
)  # fmt: skip

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(text: str | Sequence[str]) -> tuple[Network, ...]:
    """CIDRs (or addresses) from a comma-separated string or a list; ValueError on a bad one."""
    items = text.split(",") if isinstance(text, str) else list(text)
    return tuple(ipaddress.ip_network(item.strip(), strict=False) for item in items if item.strip())


@dataclass(frozen=True)
class EgressPolicy:
    """Where session users may open connections (see the module docstring)."""

    allow: tuple[Network, ...] = ()
    deny: tuple[Network, ...] = ()

    @property
    def denied(self) -> tuple[Network, ...]:
        return (*parse_networks(DEFAULT_DENY), *self.deny)

    def rules(self, chain: str, match: str) -> list[str]:
        """nft rules, allow before deny, per address family."""
        lines: list[str] = []
        for verdict, networks in (("accept", self.allow), ("reject", self.denied)):
            for version, ip in ((4, "ip"), (6, "ip6")):
                chosen = [str(n) for n in networks if n.version == version]
                if chosen:
                    lines.append(
                        f"add rule {FAMILY} {TABLE} {chain} {match} "
                        f"{ip} daddr {{ {', '.join(chosen)} }} {verdict}"
                    )
        return lines


class NetworkRules:
    def __init__(self, *, name: str, egress: EgressPolicy | None = None) -> None:
        self.chain = "sessions_" + re.sub(r"[^A-Za-z0-9_]", "_", name)
        self.egress = egress or EgressPolicy()
        self.enabled = False
        self.reason: str | None = "not set up"

    async def install(self, uids: Sequence[int]) -> None:
        """Create (or replace) our chain for `uids`; on failure, degrade and say why."""
        nft = _nft()
        if nft is None:
            self._off("nft not found: install nftables")
            return
        if not uids:
            self._off("no dedicated session users (not root)")
            return
        script = self.ruleset(uids, nameservers())
        try:
            await run_command([nft, "-f", "/dev/stdin"], input=script.encode())
        except (CommandError, OSError) as exc:
            self._off(str(exc))
            return
        self.enabled, self.reason = True, None
        logger.info("nftables: chain %s %s %s guards %d users", FAMILY, TABLE, self.chain,
                    len(uids))  # fmt: skip

    async def remove(self) -> None:
        """Delete our chain, and the table once no other manager's chain is left in it."""
        nft = _nft()
        if nft is None or not self.enabled:
            return
        self.enabled, self.reason = False, "removed at shutdown"
        await run_command([nft, "delete", "chain", FAMILY, TABLE, self.chain], check=False)
        listing = await run_command([nft, "list", "table", FAMILY, TABLE], check=False)
        if listing.returncode == 0 and b"chain " not in listing.stdout:
            await run_command([nft, "delete", "table", FAMILY, TABLE], check=False)

    def ruleset(self, uids: Sequence[int], nameservers: Sequence[str]) -> str:
        """The nft script: idempotent (add + flush), applied atomically by `nft -f`."""
        users = "{ " + ", ".join(str(u) for u in sorted(set(uids))) + " }"
        new = f"meta skuid {users} ct state new"
        match = f'meta skuid {users} oifname "lo" ct state new'
        lines = [
            f"add table {FAMILY} {TABLE}",
            f"add chain {FAMILY} {TABLE} {self.chain} "
            "{ type filter hook output priority filter; policy accept; }",
            f"flush chain {FAMILY} {TABLE} {self.chain}",
        ]
        for server in nameservers:
            ip = "ip6" if ipaddress.ip_address(server).version == 6 else "ip"
            for proto in ("udp", "tcp"):
                lines.append(
                    f"add rule {FAMILY} {TABLE} {self.chain} {new} "
                    f"{ip} daddr {server} {proto} dport 53 accept"
                )
        lines.append(f"add rule {FAMILY} {TABLE} {self.chain} {match} reject")
        lines += self.egress.rules(self.chain, new)
        return "\n".join(lines) + "\n"

    def health(self) -> dict[str, object]:
        return {"enabled": self.enabled, "reason": self.reason, "nft_chain": self.chain}

    def egress_health(self) -> dict[str, object]:
        return {
            "enabled": self.enabled,
            "reason": self.reason,
            "denied": [str(n) for n in self.egress.denied],
            "allowed": [str(n) for n in self.egress.allow],
        }

    def _off(self, reason: str) -> None:
        self.enabled, self.reason = False, reason
        logger.warning("per-session network rules are off: %s", reason)


def nameservers(resolv_conf: Path = RESOLV_CONF) -> list[str]:
    try:
        text = resolv_conf.read_text()
    except OSError:
        return []
    found: list[str] = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0] == "nameserver":
            try:
                address = ipaddress.ip_address(parts[1].split("%")[0])
            except ValueError:
                continue
            found.append(str(address))
    return found


@functools.cache
def _nft() -> str | None:
    return shutil.which("nft", path="/usr/sbin:/sbin:/usr/bin:/bin")
