"""What the benches share: nearest-rank percentiles and the table of figures they print.

Import it as `bench.common` (each bench puts the repository root on sys.path first, so
`python bench/<name>.py` works from anywhere).
"""

from __future__ import annotations

import math


def percentile(values: list[float], q: float) -> float:
    """The nearest-rank `q` quantile (0 <= q <= 1); NaN when there is nothing to rank."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


class Report:
    """Rows of (figure, value, target, verdict), printed as they come."""

    def __init__(self, *, name_width: int = 54, target_width: int = 22) -> None:
        self.rows: list[tuple[str, str, str, str]] = []
        self._name_width, self._target_width = name_width, target_width

    def add(self, name: str, value: str, target: str = "", ok: bool | None = None) -> None:
        verdict = "" if ok is None else ("ok" if ok else "MISSED")
        self.rows.append((name, value, target, verdict))
        print(
            f"  {name:<{self._name_width}} {value:>14}  {target:<{self._target_width}} {verdict}",
            flush=True,
        )

    @property
    def missed(self) -> list[str]:
        return [name for name, _, _, verdict in self.rows if verdict == "MISSED"]
