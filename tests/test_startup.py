"""Start-up rules: a public bind without API_TOKENS refuses to start in one line; isolation
measures that fell back to off are said loudly at start and in health."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from computer_use.config import Settings
from computer_use.startup import isolation_warnings, refusal
from tests.conftest import server_env
from tests.helpers import REPO, running_server

PUBLIC_BINDS = {
    "computer-use serve": [
        sys.executable, "-m", "computer_use", "serve", "--host", "0.0.0.0", "--port", "0"
    ],
    "uvicorn": [sys.executable, "-m", "uvicorn", "computer_use.main:app", "--host", "0.0.0.0"],
}  # fmt: skip


@pytest.mark.parametrize("command", PUBLIC_BINDS, ids=["serve", "uvicorn"])
def test_a_public_bind_without_api_tokens_refuses_to_start_in_one_line(
    command: str, tmp_path: Path
) -> None:
    env = {**os.environ, **server_env(tmp_path, HOST="0.0.0.0", MAX_DISPLAYS="1")}
    env.pop("API_TOKENS", None)
    env.pop("ALLOW_UNAUTHENTICATED", None)
    result = subprocess.run(
        PUBLIC_BINDS[command], cwd=REPO, env=env, capture_output=True, text=True, timeout=60
    )
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "Traceback" not in output, output
    lines = [line for line in output.splitlines() if "API_TOKENS" in line]
    assert len(lines) == 1 and "ALLOW_UNAUTHENTICATED" in lines[0], output
    assert not (tmp_path / "computer_use.db").exists(), "it migrated before refusing"


@pytest.mark.parametrize(
    ("host", "extra", "refused"),
    [
        ("127.0.0.1", {}, False),
        ("localhost", {}, False),
        ("::1", {}, False),
        ("127.0.0.5", {}, False),
        ("0.0.0.0", {}, True),
        ("::", {}, True),
        ("192.0.2.10", {}, True),
        ("box.example", {}, True),
        ("0.0.0.0", {"api_tokens": "a-token"}, False),
        ("0.0.0.0", {"api_tokens": " , "}, True),
        ("0.0.0.0", {"allow_unauthenticated": True}, False),
    ],
)
def test_refusal_depends_on_the_bind_tokens_and_the_opt_out(
    host: str, extra: dict[str, object], refused: bool
) -> None:
    settings = Settings(_env_file=None, host=host, **extra)  # type: ignore[arg-type]
    assert (refusal(settings) is not None) is refused


def test_a_render_like_host_gets_one_warning_per_measure_that_is_off() -> None:
    report = {
        "isolation": "copy",
        "isolation_reason": "no kernel overlay and no fuse-overlayfs",
        "quota_enforced": False,
        "launcher": "direct",
        "process_view": {"enabled": False, "reason": "no mount namespaces"},
        "network": {"enabled": False, "reason": "nft is not permitted"},
        "resource_limits": {"enabled": False, "reason": "no writable cgroup"},
        "abstract_sockets": {"enabled": False, "reason": "the kernel has no Landlock"},
    }
    warnings = isolation_warnings(report)
    assert len(warnings) == 6
    assert "The Landlock scope on abstract unix sockets is off: the kernel has no Landlock." in (
        warnings
    )
    assert "disk quota is not enforced" in warnings[0]
    assert any("nft is not permitted" in w for w in warnings)
    healthy = {**report, "isolation": "overlay", "launcher": "namespace"}
    for key in ("process_view", "network", "resource_limits", "abstract_sockets"):
        healthy[key] = {"enabled": True, "reason": None}
    assert isolation_warnings(healthy) == []
    # KSM merging is no isolation measure, but the layout it may fix is one.
    merged = {**healthy, "ksm": {"enabled": True, "aslr_disabled": False}}
    assert isolation_warnings(merged) == []
    [fixed] = isolation_warnings({**merged, "ksm": {"enabled": True, "aslr_disabled": True}})
    assert "KSM_DISABLE_ASLR" in fixed


def test_isolation_that_is_off_is_said_at_start_and_in_health(tmp_path: Path) -> None:
    with running_server(
        tmp_path,
        FILESYSTEM_ISOLATION_ENABLED="false",
        DESKTOP_DISPLAY_BASE="1772",
        DESKTOP_USER_PREFIX="cu-su",
        MAX_DISPLAYS="1",
    ) as server:
        with server.client() as http:
            health = http.get("/api/v1/health").json()
        log = server.log_path.read_text()
    assert health["desktops"]["isolation"] == "off"
    assert any("'off'" in warning for warning in health["warnings"]), health
    assert "WARNING computer_use.startup: ISOLATION REDUCED: Session homes use 'off'" in log
