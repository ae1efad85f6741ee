"""What files and recordings cost, measured in one run against a real server.

- recording: CPU (% of one core) and PSS of a session's ffmpeg at RECORDING_FPS, with the
  screen idle and with the screen changing every frame, next to the same session's own
  desktop processes (Xvfb, jwm, x11vnc, Firefox) over the same window -> ratio;
- files: upload (PUT) and download (GET) throughput of a file of --size-mb through the REST
  API (HTTP -> sandboxed helper as the session user -> overlay home), against a plain `cp`
  of the same file into and out of the same home on the host -> ratio.

Run as root: `.venv/bin/python bench/files_recording.py [--size-mb 200] [--seconds 15]`.
Uses displays from DESKTOP_DISPLAY_BASE (default 11900) and users DESKTOP_USER_PREFIX.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.helpers import ServerProcess  # noqa: E402

MIB = 1024 * 1024
CLK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK


def pss_mib(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def pids_where(match: str) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if match in (entry / "cmdline").read_bytes().decode(errors="replace"):
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


def pids_of_uid(uid: int) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if entry.stat().st_uid == uid:
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


def measure_recording(http: httpx.Client, data_dir: Path, seconds: float) -> None:
    sid = http.post("/api/v1/sessions", json={"title": "bench", "record": True}).json()["id"]
    try:
        time.sleep(3)  # let Firefox settle
        ffmpeg = pids_where(str(data_dir / "recordings" / sid))
        assert ffmpeg, "no ffmpeg recording the session"
        home = data_dir / "sessions" / sid / "home"
        uid = home.stat().st_uid
        desktop = pids_of_uid(uid)
        for label, busy in (("idle screen", False), ("screen changing", True)):
            painter = None
            if busy:
                # a full-screen xterm repainting continuously, started as the session user
                display = http.get(f"/api/v1/sessions/{sid}").json()["display"]
                xauth = next(Path("/run/computer-use").glob(f"displays-*/{display[1:]}/Xauthority"))
                painter = subprocess.Popen(
                    ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--",
                     "xterm", "-geometry", "160x50+0+0", "-e", "sh", "-c",
                     "while :; do ls -lR /usr/share | head -60; done"],
                    env={"DISPLAY": display, "XAUTHORITY": str(xauth), "PATH": "/usr/bin:/bin"},
                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                )  # fmt: skip
                time.sleep(1)
                if painter.poll() is not None:
                    err = painter.stderr.read().decode() if painter.stderr else ""
                    raise SystemExit(f"xterm did not start: {err}")
                desktop = pids_of_uid(uid)  # the painter's CPU counts as the desktop's
            before = {p: cpu_seconds(p) for p in ffmpeg + desktop}
            time.sleep(seconds)
            rec = sum(cpu_seconds(p) - before[p] for p in ffmpeg) / seconds * 100
            own = sum(cpu_seconds(p) - before[p] for p in desktop) / seconds * 100
            if painter is not None:
                painter.terminate()
                painter.wait()
            print(
                f"recording, {label}: ffmpeg {rec:.1f}% of a core, desktop itself {own:.1f}% "
                f"-> recording adds {rec / own if own else float('inf'):.2f}x the desktop's CPU"
            )
        rec_pss = sum(pss_mib(p) for p in ffmpeg)
        own_pss = sum(pss_mib(p) for p in pids_of_uid(uid))
        size = sum(p.stat().st_size for p in (data_dir / "recordings" / sid).glob("*.ts"))
        print(
            f"recording memory: ffmpeg PSS {rec_pss:.1f} MiB vs the desktop's {own_pss:.1f} MiB "
            f"({rec_pss / own_pss * 100:.0f}%); {size / MIB:.2f} MiB of video so far"
        )
    finally:
        http.delete(f"/api/v1/sessions/{sid}")


def measure_files(http: httpx.Client, data_dir: Path, size_mb: int) -> None:
    sid = http.post("/api/v1/sessions", json={"title": "bench files"}).json()["id"]
    try:
        with tempfile.TemporaryDirectory() as tmp:
            source = Path(tmp) / "payload.bin"
            with source.open("wb") as out:
                for _ in range(size_mb):
                    out.write(os.urandom(MIB))
            home = data_dir / "sessions" / sid / "home"

            start = time.perf_counter()
            with source.open("rb") as body:
                put = http.put(f"/api/v1/sessions/{sid}/files/Uploads/api.bin", content=body)
            up = time.perf_counter() - start
            assert put.status_code == 201, put.text

            start = time.perf_counter()
            received = 0
            with http.stream("GET", f"/api/v1/sessions/{sid}/files/Uploads/api.bin") as got:
                for chunk in got.iter_bytes(1024 * 1024):
                    received += len(chunk)
            down = time.perf_counter() - start
            assert received == size_mb * MIB

            start = time.perf_counter()
            subprocess.run(["cp", str(source), str(home / "Uploads" / "cp.bin")], check=True)
            subprocess.run(["sync", "-f", str(home / "Uploads" / "cp.bin")], check=True)
            cp_in = time.perf_counter() - start
            start = time.perf_counter()
            subprocess.run(["cp", str(home / "Uploads" / "cp.bin"), str(Path(tmp) / "out.bin")],
                           check=True)  # fmt: skip
            cp_out = time.perf_counter() - start
        for label, api, cp in (("upload", up, cp_in), ("download", down, cp_out)):
            print(
                f"{label} {size_mb} MiB: API {size_mb / api:.0f} MiB/s ({api:.2f} s), "
                f"cp {size_mb / cp:.0f} MiB/s ({cp:.2f} s) -> API at {cp / api:.2f}x cp"
            )
    finally:
        http.delete(f"/api/v1/sessions/{sid}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size-mb", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=15.0)
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root: sessions need their own users and namespaces")
    data_dir = Path(tempfile.mkdtemp(prefix="cu-bench-files-"))
    env = {
        "DATA_DIR": str(data_dir),
        "DATABASE_URL": "",
        "MAX_DISPLAYS": "2",
        "MAX_UPLOAD_MB": str(args.size_mb * 2),
        "SESSION_DISK_QUOTA_MB": str(max(500, args.size_mb * 3)),
        "DESKTOP_DISPLAY_BASE": os.environ.get("DESKTOP_DISPLAY_BASE", "11900"),
        "DESKTOP_USER_PREFIX": os.environ.get("DESKTOP_USER_PREFIX", "cu-bf"),
        "RATE_LIMIT_SESSIONS": "1000/minute",
    }
    server = ServerProcess(env, data_dir / "server.log").start()
    try:
        with httpx.Client(base_url=server.base_url, timeout=300) as http:
            fps = http.get("/api/v1/config").json()["recording_fps"]
            print(f"RECORDING_FPS={fps}, screen 1024x768")
            measure_recording(http, data_dir, args.seconds)
            measure_files(http, data_dir, args.size_mb)
    finally:
        server.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
