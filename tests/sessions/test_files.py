"""Files in and out of a session's HOME over REST, through the session's own sandbox: the
agent sees uploads as its own, its downloads come out byte for byte, and bad paths, symlink
escapes, other sessions' ids and over-quota uploads are refused with nothing left behind."""

from __future__ import annotations

import asyncio
import io
import json
import os
import uuid
import zipfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from computer_use.loopback import LoopbackModelServer
from tests.helpers import ServerProcess
from tests.sessions.conftest import MODEL_KEY, last_tool_output, run_to_completion, start_server

QUOTA_MB = 16
UPLOAD_MB = 24
MIB = 1024 * 1024


@pytest.fixture(scope="module")
async def server(
    shell_model_server: LoopbackModelServer, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[ServerProcess]:
    data_dir = tmp_path_factory.mktemp("files")
    proc = await start_server(
        data_dir,
        MAX_DISPLAYS="3",
        DESKTOP_DISPLAY_BASE="1400",
        DESKTOP_USER_PREFIX="cu-tf",
        SESSION_DISK_QUOTA_MB=str(QUOTA_MB),
        MAX_UPLOAD_MB=str(UPLOAD_MB),
        ANTHROPIC_API_KEY=MODEL_KEY,
        ANTHROPIC_BASE_URL=shell_model_server.base_url,
    )
    yield proc
    proc.stop()


@pytest.fixture
async def http(server: ServerProcess) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.base_url, timeout=60) as client:
        yield client


@pytest.fixture
async def session(http: httpx.AsyncClient) -> AsyncIterator[str]:
    sid: str = (await http.post("/api/v1/sessions", json={"title": "files"})).json()["id"]
    yield sid
    await http.delete(f"/api/v1/sessions/{sid}")


def upper_layer(server: ServerProcess, session_id: str) -> Path:
    """The session's own files on the host (the overlay's upper layer)."""
    root = Path(server.env["DATA_DIR"]) / "sessions" / session_id
    return root / "layer" / "upper"


# Firefox keeps writing its profile and caches while a test runs.
BROWSER_DIRS = (".mozilla", ".cache", ".config", ".local")


def files_under(path: Path) -> set[str]:
    names = {str(p.relative_to(path)) for p in path.rglob("*")}
    return {n for n in names if not n.startswith(BROWSER_DIRS)}


async def test_an_upload_is_the_agents_and_its_downloads_come_out_byte_for_byte(
    http: httpx.AsyncClient, session: str
) -> None:
    payload = os.urandom(3 * MIB + 17)
    put = await http.put(f"/api/v1/sessions/{session}/files/Uploads/in/data.bin", content=payload)
    assert put.status_code == 201, put.text
    assert put.json() == {"path": "Uploads/in/data.bin", "size": len(payload)}

    detail = await run_to_completion(
        http,
        session,
        "stat -c '%U %s' ~/Uploads/in/data.bin; id -un; "
        "printf 'report of the run\\n' > ~/Downloads/report.txt; "
        "mkdir -p ~/Downloads/set/deep && head -c 100000 ~/Uploads/in/data.bin "
        "> ~/Downloads/set/deep/part.bin && echo made",
    )
    owner_and_size, me, made = last_tool_output(detail).strip().splitlines()
    assert owner_and_size == f"{me} {len(payload)}"  # the session user owns the upload
    assert me.startswith("cu") and made == "made"

    got = await http.get(f"/api/v1/sessions/{session}/files/Uploads/in/data.bin")
    assert got.status_code == 200 and got.content == payload
    assert got.headers["content-length"] == str(len(payload))
    assert "attachment" in got.headers["content-disposition"]

    report = await http.get(f"/api/v1/sessions/{session}/files/Downloads/report.txt")
    assert report.content == b"report of the run\n"

    listing = (await http.get(f"/api/v1/sessions/{session}/files/Downloads")).json()
    names = [(e["name"], e["type"]) for e in listing["entries"]]
    assert names == [("set", "dir"), ("report.txt", "file")]  # folders first
    home = (await http.get(f"/api/v1/sessions/{session}/files")).json()
    assert {"Downloads", "Uploads"} <= {e["name"] for e in home["entries"]}

    zipped = await http.get(f"/api/v1/sessions/{session}/files/Downloads", params={"format": "zip"})
    assert zipped.status_code == 200 and zipped.headers["content-type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(zipped.content)) as archive:
        assert sorted(archive.namelist()) == ["report.txt", "set/deep/part.bin"]
        assert archive.read("set/deep/part.bin") == payload[:100000]
        assert archive.read("report.txt") == b"report of the run\n"

    assert (await http.delete(f"/api/v1/sessions/{session}/files/Downloads/set")).status_code == 204
    gone = await http.get(f"/api/v1/sessions/{session}/files/Downloads/set")
    assert gone.status_code == 404


async def test_bad_paths_get_4xx_and_leave_nothing_behind(
    http: httpx.AsyncClient, session: str, server: ServerProcess
) -> None:
    await run_to_completion(
        http, session, "ln -s /etc ~/etc-link && ln -s /etc/passwd ~/passwd-link && echo ok"
    )
    upper = upper_layer(server, session)
    before = files_under(upper)
    base = f"/api/v1/sessions/{session}/files"
    cases = [
        ("PUT", f"{base}/a/%2E%2E/%2E%2E/escape.txt", 400, "invalid_path"),
        ("PUT", f"{base}/Uploads/%2E%2E%2F%2E%2E%2Fescape.txt", 400, "invalid_path"),
        ("PUT", f"{base}/Uploads/a%00b.txt", 400, "invalid_path"),
        ("PUT", f"{base}/etc-link/owned.txt", 403, "outside_home"),
        ("PUT", f"{base}/passwd-link", 403, "outside_home"),
        ("PUT", f"{base}/Downloads", 409, "is_a_directory"),
        ("PUT", f"{base}/Downloads/%2E/x", 400, "invalid_path"),
        ("GET", f"{base}/etc-link/hostname", 403, "outside_home"),
        ("GET", f"{base}/passwd-link", 403, "outside_home"),
        ("GET", f"{base}/%2E%2E/%2E%2E/etc/passwd", 400, "invalid_path"),
        ("GET", f"{base}/no/such/file", 404, "not_found"),
        ("GET", f"{base}/passwd-link?format=zip", 403, "outside_home"),
        ("DELETE", f"{base}/%2E%2E", 400, "invalid_path"),
        ("DELETE", f"{base}/", 400, "invalid_path"),
    ]
    for method, url, status, code in cases:
        response = await http.request(method, url, content=b"x" if method == "PUT" else None)
        assert response.status_code == status, (method, url, response.text)
        assert response.json()["error"]["code"] == code, (url, response.text)
    # the link itself can be deleted (never what it points to)
    assert (await http.delete(f"{base}/etc-link")).status_code == 204
    assert files_under(upper) == before - {"etc-link"}


async def test_over_quota_and_over_limit_uploads_leave_nothing(
    http: httpx.AsyncClient, session: str, server: ServerProcess
) -> None:
    upper = upper_layer(server, session)
    before = files_under(upper)
    base = f"/api/v1/sessions/{session}/files"

    over_quota = await http.put(f"{base}/Uploads/new/big.bin", content=b"\0" * (20 * MIB))
    assert over_quota.status_code == 413, over_quota.text
    assert over_quota.json()["error"]["code"] == "quota"
    assert "SESSION_DISK_QUOTA_MB" in over_quota.text

    declared = await http.put(f"{base}/Uploads/huge.bin", content=b"\0" * (UPLOAD_MB * MIB + 1))
    assert declared.status_code == 413 and "MAX_UPLOAD_MB" in declared.text

    def chunked() -> Iterator[bytes]:  # no Content-Length: counted as it arrives
        for _ in range(UPLOAD_MB + 1):
            yield b"\1" * MIB

    streamed = await http.put(f"{base}/Uploads/stream.bin", content=_aiter(chunked()))
    assert streamed.status_code == 413, streamed.text
    assert streamed.json()["error"]["code"] in ("too_large", "quota")

    assert files_under(upper) == before  # no temporary file, no created folder
    fine = await http.put(f"{base}/Uploads/small.bin", content=b"ok")
    assert fine.status_code == 201  # the session still works and has room again


async def _aiter(chunks: Iterator[bytes]) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk


async def test_another_sessions_files_are_unreachable_through_its_id(
    http: httpx.AsyncClient, session: str
) -> None:
    other = (await http.post("/api/v1/sessions", json={"title": "other"})).json()["id"]
    try:
        put = await http.put(f"/api/v1/sessions/{session}/files/secret.txt", content=b"A's")
        assert put.status_code == 201
        # Session B's id only ever reaches B's home: the same path is B's own (missing) file.
        b_read = await http.get(f"/api/v1/sessions/{other}/files/secret.txt")
        assert b_read.status_code == 404
        # A relative climb to A's home through B is refused as a path, not followed.
        climb = await http.get(
            f"/api/v1/sessions/{other}/files/%2E%2E/%2E%2E/sessions/{session}/home/secret.txt"
        )
        assert climb.status_code == 400
        unknown = await http.get(f"/api/v1/sessions/{uuid.uuid4()}/files/secret.txt")
        assert unknown.status_code == 404
    finally:
        await http.delete(f"/api/v1/sessions/{other}")


async def test_files_survive_a_restart(http: httpx.AsyncClient, server: ServerProcess) -> None:
    sid = (await http.post("/api/v1/sessions", json={"title": "restart"})).json()["id"]
    put = await http.put(f"/api/v1/sessions/{sid}/files/Uploads/keep.json", content=b'{"a":1}')
    assert put.status_code == 201
    server.stop()
    await start_again(server)
    async with httpx.AsyncClient(base_url=server.base_url, timeout=60) as again:
        got = await again.get(f"/api/v1/sessions/{sid}/files/Uploads/keep.json")
        assert got.status_code == 200 and json.loads(got.content) == {"a": 1}
        await again.delete(f"/api/v1/sessions/{sid}")


async def start_again(server: ServerProcess) -> None:
    await asyncio.to_thread(server.start)
