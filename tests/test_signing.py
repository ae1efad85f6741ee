"""One signing key (SECRET_KEY or DATA_DIR/secret_key) for every URL token, one purpose each."""

from __future__ import annotations

import stat
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import SecretStr

from computer_use.auth import StreamTokens
from computer_use.config import Settings
from computer_use.signing import BadSignature, MalformedToken, Signer, load_secret_key
from computer_use.vnc.tokens import VncTokenError, VncTokens
from tests.conftest import server_env
from tests.helpers import ServerDied, ServerProcess, running_server

KEY = b"k" * 32


def test_a_token_signed_for_one_purpose_never_verifies_for_another() -> None:
    vnc, stream = Signer(KEY, "vnc"), Signer(KEY, "stream")
    token = vnc.sign(b"1:i:s1")
    assert vnc.unsign(token) == b"1:i:s1"
    with pytest.raises(BadSignature):
        stream.unsign(token)
    with pytest.raises(BadSignature):
        Signer(b"o" * 32, "vnc").unsign(token)
    # The same key behind both token classes: neither accepts the other's tokens.
    stream_token = StreamTokens(KEY).mint("s1", "owner")
    with pytest.raises(VncTokenError, match="signature"):
        VncTokens(KEY).verify(stream_token, "s1")
    assert StreamTokens(KEY).verify(VncTokens(KEY).mint("s1", interactive=True), "s1") is None


@pytest.mark.parametrize("token", ["", "abc", "a.", ".b", "a=.b", "YQ.YQ=", "é.é"])
def test_malformed_tokens_are_told_apart_from_forged_ones(token: str) -> None:
    with pytest.raises(MalformedToken):
        Signer(KEY, "vnc").unsign(token)


def test_generated_key_is_kept_0600_and_reused(tmp_path: Path) -> None:
    settings = Settings(_env_file=None, data_dir=tmp_path / "data")
    key = load_secret_key(settings)
    path = tmp_path / "data" / "secret_key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(key) >= 32 and path.read_bytes().strip() == key
    assert load_secret_key(settings) == key  # a second process (or a restart) reads the same
    configured = Settings(_env_file=None, data_dir=tmp_path / "data", secret_key="x" * 40)
    assert load_secret_key(configured) == b"x" * 40  # SECRET_KEY wins over the file


def test_a_loose_key_file_is_tightened(tmp_path: Path) -> None:
    path = tmp_path / "secret_key"
    path.write_text("y" * 40)
    path.chmod(0o644)
    assert load_secret_key(Settings(_env_file=None, data_dir=tmp_path)) == b"y" * 40
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_processes_starting_together_agree_on_one_key(tmp_path: Path) -> None:
    script = (
        "import hashlib, sys\n"
        "from computer_use.config import Settings\n"
        "from computer_use.signing import load_secret_key\n"
        "sys.stdin.read()\n"  # all start, then all load at once
        "key = load_secret_key(Settings(_env_file=None, data_dir=sys.argv[1]))\n"
        "print(hashlib.sha256(key).hexdigest())\n"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(tmp_path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(6)
    ]
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.close()
    digests = set()
    for proc in procs:
        assert proc.stdout is not None
        digests.add(proc.stdout.read().strip())
        assert proc.wait(timeout=60) == 0
    assert len(digests) == 1 and len(digests.pop()) == 64
    assert [p.name for p in tmp_path.iterdir()] == ["secret_key"]  # no temporary file left


def test_short_secret_key_is_refused_at_start(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    server = ServerProcess(server_env(tmp_path, SECRET_KEY="too-short-key"), log)
    with pytest.raises(ServerDied, match="exited with status 2"):
        server.start()
    lines = [line.strip() for line in log.read_text().splitlines() if "SECRET_KEY" in line]
    assert len(lines) == 1, log.read_text()
    assert lines[0].startswith("SECRET_KEY: ") and "at least 32 characters" in lines[0]
    assert "too-short-key" not in log.read_text()
    assert not (tmp_path / "secret_key").exists()


def test_settings_never_show_the_key() -> None:
    settings = Settings(_env_file=None, secret_key=SecretStr("z" * 40))
    assert "z" * 40 not in repr(settings) and "z" * 40 not in str(settings.model_dump())


def test_tokens_minted_before_a_restart_verify_after_it(tmp_path: Path) -> None:
    bearer = {"Authorization": "Bearer tok-restart"}
    env = {
        "API_TOKENS": "tok-restart",
        "DESKTOP_DISPLAY_BASE": "1760",
        "DESKTOP_USER_PREFIX": "cu-sk",
        "MAX_DISPLAYS": "2",
    }
    with running_server(tmp_path, **env) as server, server.client() as http:
        created = http.post("/api/v1/sessions", json={"title": "keep"}, headers=bearer)
        assert created.status_code == 201, created.text
        session = created.json()
    assert stat.S_IMODE((tmp_path / "secret_key").stat().st_mode) == 0o600
    stream_url, vnc_url = session["stream_url"], session["vnc_url"]
    assert "?token=" in stream_url and "?token=" in vnc_url

    restarted = ServerProcess(server_env(tmp_path, **env), tmp_path / "server.log").start()
    try:
        with restarted.client() as http:
            # No Authorization header: only the signed token lets these in.
            with http.stream("GET", f"{stream_url}&after=0") as stream:
                assert stream.status_code == 200
                assert stream.headers["content-type"].startswith("text/event-stream")
            viewer = http.get(vnc_url)
            assert viewer.status_code == 200, viewer.text
            path, token = stream_url.split("?token=")
            forged = http.get(f"{path}?token={token[:-2]}{'AA' if token[-2:] != 'AA' else 'BB'}")
            assert forged.status_code == 401
            http.delete(f"/api/v1/sessions/{session['id']}", headers=bearer)
    finally:
        restarted.stop()
