"""A kept recording's download through a desktop host's keeper: its throughput against the
same download from this process's own disk, measured in one run.

A synthetic recording (one MPEG-TS part of about --size-mb, made by ffmpeg from its test
source at a high bitrate, and its recording.json) is put in a desktop host's kept recordings
(`DATA_DIR/kept/recordings/<id>/`, as a session actor leaves one on expiry with
RECORDINGS_ON_EXPIRY=keep), on a Ray cluster on this machine (tests/cluster/ray_cluster.py: a
head and one desktop host). Then, --runs times each:

- local: `file_download` of the same recording exported by this process
  (SessionService's path: export, then reads of at most 1 MiB);
- keeper: the API replica's `open_download` against the host's keeper (export on the host,
  then one actor call per read of at most 1 MiB, the next once the previous one is back, as
  DownloadResponse reads while its client takes the bytes).

Each run is timed in two: opening (the export: ffmpeg joining the part into one MP4 with
`-c copy`, on the host for the keeper) and reading it all (MiB/s). HTTP is not in it.

Run as root: `CU_TEST_SLOT=9 .venv/bin/python bench/recording_download.py [--size-mb 64]`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# Before ray: it sets the cluster's token for this process's client (Ray reads it at import).
from tests.cluster.ray_cluster import ray_cluster

# isort: split
import ray
from tests import slots

from computer_use.cluster.kept_recordings import ensure_keeper
from computer_use.cluster.naming import NAMESPACE, find_keeper
from computer_use.cluster.remote_recordings import open_download
from computer_use.config import Settings
from computer_use.desktops.files import BATCH
from computer_use.desktops.recorder import Recordings
from computer_use.sessions.recording_reader import (
    RecordingDownload,
    RecordingReader,
    file_download,
)

MIB = 1024 * 1024


def make_recording(directory: Path, size_mb: int) -> None:
    """One part of about `size_mb` MiB (10 s of 1024x768 test pattern at a matching bitrate)."""
    directory.mkdir(parents=True, mode=0o700)
    bitrate = size_mb * 8 * MIB // 10
    subprocess.run(
        [
            "ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error",
            "-f", "lavfi", "-i", "testsrc2=size=1024x768:rate=25", "-t", "10",
            "-c:v", "libx264", "-preset", "ultrafast", "-b:v", str(bitrate),
            "-minrate", str(bitrate), "-maxrate", str(bitrate), "-bufsize", str(bitrate),
            "-x264-params", "nal-hrd=cbr", "-pix_fmt", "yuv420p",
            "-f", "mpegts", str(directory / "part-0001-00000.ts"),
        ],
        check=True,
    )  # fmt: skip
    now = time.time()
    meta = {"fps": 25, "parts": [{"started_at": now - 10, "ended_at": now}]}
    (directory / "recording.json").write_text(json.dumps(meta))


async def drain(download: RecordingDownload) -> int:
    """Reads the download to its end as DownloadResponse does; its size."""
    offset = 0
    try:
        while offset < download.size:
            chunk = await download.read_at(offset, BATCH)
            if not chunk:
                break
            offset += len(chunk)
    finally:
        download.close()
    return offset


async def timed(
    open_one: Callable[[], Awaitable[RecordingDownload]], runs: int
) -> tuple[list[float], list[float]]:
    """Per run: the seconds to open (the export), then to read it all."""
    opening, reading = [], []
    for _ in range(runs):
        started = time.perf_counter()
        download = await open_one()
        opened = time.perf_counter()
        size = await drain(download)
        opening.append(opened - started)
        reading.append(time.perf_counter() - opened)
        assert size == download.size, (size, download.size)
    return opening, reading


async def measure(workdir: Path, session_id: str, host: str, runs: int) -> None:
    local = RecordingReader(Recordings(workdir / "host" / "kept", fps=25))

    async def local_download() -> RecordingDownload:
        return await file_download(await local.export_recording(session_id))

    size = (await local_download()).size
    print(f"export: {size / MIB:.1f} MiB; {runs} runs each; load {load()}", flush=True)
    for label, opener in (
        ("local (this process's disk)", local_download),
        ("keeper (one actor call per MiB)", lambda: open_download(session_id, host)),
    ):
        opening, reading = await timed(opener, runs)
        export, read = statistics.median(opening), statistics.median(reading)
        print(f"{label}: export p50 {export * 1000:.0f} ms, then reads p50 {read * 1000:.0f} ms"
              f" = {size / MIB / read:.0f} MiB/s (reads min {min(reading) * 1000:.0f} ms,"
              f" max {max(reading) * 1000:.0f} ms)", flush=True)  # fmt: skip


def keeper_memory(host: str) -> str:
    """The keeper's resident and proportional memory (its process is on this machine)."""
    keeper = find_keeper(host)
    assert keeper is not None
    pid = ray.get(keeper.__ray_call__.remote(lambda _: os.getpid()), timeout=30)
    status = Path(f"/proc/{pid}/status").read_text()
    rss = next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS"))
    rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
    pss = next(line.split()[1] for line in rollup.splitlines() if line.startswith("Pss:"))
    return f"RSS {int(rss) / 1024:.0f} MiB, PSS {int(pss) / 1024:.0f} MiB"


def load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-download-") as tmp:
        workdir = Path(tmp)
        session_id = str(uuid.uuid4())
        with ray_cluster(workdir) as cluster:
            cluster.start_head()
            cluster.connect(NAMESPACE)
            prefix = slots.prefix("cu-bd")
            cluster.add_desktop_host(
                "host",
                1,
                {
                    "DATA_DIR": str(workdir / "host"),
                    "DESKTOP_USER_PREFIX": prefix,
                    "INSTANCE_NAME": "bench-host",
                },
            )
            cluster.wait_for_desktops()

            @ray.remote(num_cpus=0, resources={"desktop": 0.01})
            def start_keeper() -> str:  # on the host: its settings, its node
                settings = Settings(ray_address="")
                ray.get(ensure_keeper(settings).ping.remote())
                return settings.instance

            host = ray.get(start_keeper.remote(), timeout=120)
            print(f"the keeper's process: {keeper_memory(host)}", flush=True)
            # Once the keeper has run its reconcile (before its ping): it knows no database.
            make_recording(workdir / "host" / "kept" / "recordings" / session_id, args.size_mb)
            try:
                asyncio.run(measure(workdir, session_id, host, args.runs))
            finally:
                keeper = find_keeper(host)
                if keeper is not None:
                    ray.kill(keeper)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mb", type=int, default=64)
    parser.add_argument("--runs", type=int, default=5)
    main(parser.parse_args())
