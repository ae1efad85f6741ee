"""Test runs side by side on one host: `CU_TEST_SLOT=N` (1-9) moves every test display range up
by N*2000 and renames every test user prefix `cu-xx` to `cuN-xx`, so two checkouts can run their
suites at the same time without reclaiming each other's desktops. Slot 0 (unset) changes nothing."""

from __future__ import annotations

import os
from collections.abc import Mapping

SLOT = int(os.environ.get("CU_TEST_SLOT", "0") or "0")
if not 0 <= SLOT <= 9:
    raise SystemExit("CU_TEST_SLOT must be 0-9")


def display(base: int) -> int:
    return base + 2000 * SLOT


def prefix(name: str) -> str:
    if SLOT and name.startswith("cu-"):
        return f"cu{SLOT}-{name[3:]}"
    return name


def env(values: Mapping[str, str]) -> dict[str, str]:
    """`values` with DESKTOP_DISPLAY_BASE and DESKTOP_USER_PREFIX moved to this slot."""
    out = dict(values)
    if out.get("DESKTOP_DISPLAY_BASE"):
        out["DESKTOP_DISPLAY_BASE"] = str(display(int(out["DESKTOP_DISPLAY_BASE"])))
    if out.get("DESKTOP_USER_PREFIX"):
        out["DESKTOP_USER_PREFIX"] = prefix(out["DESKTOP_USER_PREFIX"])
    return out
