"""Minimizing idle browsers (desktops/minimize.py), on processes of the test's own that answer
the signal as Firefox does: a quiet browser is asked once per quiet spell, again after it was
busy, its report is removed; content processes and processes without a handler are never
signalled. test_reclaim.py has a session's real Firefox."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from subprocess import PIPE

import pytest

from computer_use.desktops.minimize import SIGNAL, Minimizer, handles, is_browser, reports

# Answers SIGNAL as Firefox does (a memory report in its TMPDIR, here the host's /tmp; with
# --silent none, as a Firefox that cannot write one); SIGUSR1 makes it busy for half a second
# of CPU.
FAKE_FIREFOX = """
import os, signal, sys, time
def minimize(signum, frame):
    if "--silent" not in sys.argv:
        with open(f"/tmp/unified-memory-report-test-{os.getpid()}.json.gz", "wb") as report:
            report.write(b"{}")
    print("minimized", flush=True)
def spin(signum, frame):
    end = time.process_time() + 0.5
    while time.process_time() < end:
        pass
    print("spun", flush=True)
signal.signal(signal.SIGRTMIN + 1, minimize)
signal.signal(signal.SIGUSR1, spin)
print("ready", flush=True)
while True:
    signal.pause()
"""

Spawn = Callable[[list[str], str], Awaitable[asyncio.subprocess.Process]]


@pytest.fixture
async def spawn() -> AsyncIterator[Spawn]:
    children: list[asyncio.subprocess.Process] = []

    async def start(argv: list[str], executable: str) -> asyncio.subprocess.Process:
        child = await asyncio.create_subprocess_exec(*argv, executable=executable, stdout=PIPE)
        children.append(child)
        return child

    yield start
    for child in children:
        if child.returncode is None:
            child.kill()
        await child.wait()


async def said(child: asyncio.subprocess.Process, line: str) -> None:
    assert child.stdout is not None
    async with asyncio.timeout(20):
        assert (await child.stdout.readline()).decode().strip() == line


async def test_a_quiet_browser_is_minimized_once_until_it_was_busy_again(spawn: Spawn) -> None:
    browser = await spawn(["firefox-esr", "-c", FAKE_FIREFOX], sys.executable)
    content = await spawn(["firefox-esr", "-c", FAKE_FIREFOX, "-contentproc"], sys.executable)
    starting = await spawn(["firefox-esr", "1000"], "/bin/sleep")  # no handler yet
    await said(browser, "ready")
    await said(content, "ready")
    assert is_browser(browser.pid) and not is_browser(content.pid)
    assert is_browser(starting.pid) and not handles(starting.pid, SIGNAL)
    pids = [browser.pid, content.pid, starting.pid]
    minimizer = Minimizer()

    minimizer.step(pids)  # first sight: nothing to compare its CPU time with
    assert minimizer.minimized == 0
    minimizer.step(pids)  # quiet since: asked
    assert minimizer.minimized == 1
    await said(browser, "minimized")
    report = f"/tmp/unified-memory-report-test-{browser.pid}.json.gz"
    assert reports(browser.pid) == [Path(f"/proc/{browser.pid}/root{report}")]
    minimizer.step(pids)  # the report is written: removed
    assert reports(browser.pid) == [] and minimizer.minimized_browsers() == [browser.pid]
    minimizer.step(pids)  # still quiet: not asked again
    assert minimizer.minimized == 1

    assert browser.pid is not None
    os.kill(browser.pid, signal.SIGUSR1)
    await said(browser, "spun")
    minimizer.step(pids)  # busy since the last look
    assert minimizer.minimized_browsers() == [] and minimizer.minimized == 1
    minimizer.step(pids)  # quiet again: asked again
    assert minimizer.minimized == 2
    await said(browser, "minimized")
    minimizer.step(pids)
    assert reports(browser.pid) == [] and minimizer.settled() is False  # the sleeper never settles

    # The content process and the process without a handler were never signalled.
    assert reports(content.pid) == []
    assert starting.returncode is None and content.returncode is None


async def test_a_browser_that_writes_no_report_is_given_up_on(spawn: Spawn) -> None:
    browser = await spawn(["firefox-esr", "-c", FAKE_FIREFOX, "--silent"], sys.executable)
    await said(browser, "ready")
    pids = [browser.pid]
    minimizer = Minimizer()
    minimizer.step(pids)
    minimizer.step(pids)
    await said(browser, "minimized")
    for _ in range(3):
        assert minimizer.minimized_browsers() == []
        minimizer.step(pids)
    assert minimizer.minimized_browsers() == [browser.pid] and minimizer.minimized == 1


def test_off_it_looks_at_nothing() -> None:
    minimizer = Minimizer()
    minimizer.enabled = False
    minimizer.step([os.getpid()])
    assert minimizer.minimized_browsers() == [] and minimizer.settled()
