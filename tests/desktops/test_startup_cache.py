"""The profile template taken from the recording's profile: what every session may share,
without what must differ between sessions, its databases compacted and intact."""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path

from computer_use.desktops.startup_cache import NOT_TEMPLATED, make_template

CLIENT_ID = "f405b2ab-bfcd-4e32-84c4-809181b3b00e"


def recorded_profile(path: Path) -> sqlite3.Connection:
    """A profile as a headless Firefox leaves it, in miniature; the returned connection keeps
    its database's write-ahead log apart, as a killed Firefox leaves it."""
    path.mkdir()
    for name in NOT_TEMPLATED:
        (path / name).write_text("per profile")
    (path / "cf982af1.sqlite").write_text("profile group")
    (path / "extensions.json").write_text('{"schemaVersion": 37}')
    (path / "storage" / "permanent").mkdir(parents=True)
    (path / "storage" / "permanent" / "data").write_text("kept")
    (path / "prefs.js").write_text(
        'user_pref("browser.migration.version", 150);\n'
        f'user_pref("toolkit.telemetry.cachedClientID", "{CLIENT_ID}");\n'
        'user_pref("extensions.webextensions.uuids", "{\\"a@b\\":\\"9A310967-E580-48BF-B3E8-'
        '4EAFEBBC122D\\"}");\n'
    )
    db = sqlite3.connect(path / "places.sqlite", isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA wal_autocheckpoint=0")
    db.execute("CREATE TABLE moz_places (url TEXT)")
    db.execute("CREATE TABLE scratch (data BLOB)")
    db.execute("INSERT INTO scratch VALUES (zeroblob(1000000))")  # pages freed below
    db.execute("DROP TABLE scratch")
    db.execute("INSERT INTO moz_places VALUES ('about:blank')")
    return db


def test_the_template_leaves_out_what_differs_and_compacts_the_databases(tmp_path: Path) -> None:
    profile = tmp_path / "recorded"
    template = tmp_path / "template"
    with contextlib.closing(recorded_profile(profile)):
        wal = profile / "places.sqlite-wal"
        before = (profile / "places.sqlite").stat().st_size + wal.stat().st_size
        assert wal.stat().st_size > 0

        make_template(profile, template)

    names = {entry.name for entry in template.iterdir()}
    assert not names & NOT_TEMPLATED
    assert "cf982af1.sqlite" not in names
    assert (template / "storage" / "permanent" / "data").read_text() == "kept"
    assert (template / "extensions.json").read_text() == '{"schemaVersion": 37}'
    # Only the prefs without a random identifier.
    assert (template / "prefs.js").read_text() == 'user_pref("browser.migration.version", 150);\n'
    # The log folded in, the free pages gone, the rows there.
    assert not (template / "places.sqlite-wal").exists()
    assert (template / "places.sqlite").stat().st_size < before / 4
    with contextlib.closing(sqlite3.connect(template / "places.sqlite")) as db:
        assert db.execute("SELECT url FROM moz_places").fetchall() == [("about:blank",)]
