"""Health figures for the `stats` topic.

`Health` counts what the station did since start (inspections, decisions by label, trigger-to-
result latency over a bounded window, the circularity sums from each record's impact); `stats()`
adds what other parts know at that moment (bench and broker link state, outbox depth, the model)
and what the machine says (disk free where the journal lives, the CPU temperature where the
board has a sensor) into one `contract.Stats`.
"""

from __future__ import annotations

import math
import shutil
import time
from collections import Counter, deque
from collections.abc import Callable
from pathlib import Path

from edge.contract import Disposition, InspectionRecord, LinkState, ModelInfo, Stats
from edge.contract.timefmt import utc_now

THERMAL_ROOT = Path("/sys/class/thermal")
CPU_ZONE_TYPES = (
    "cpu-thermal",
    "cpu_thermal",
    "x86_pkg_temp",
    "soc_thermal",
    "cpu",
    "CPU-therm",
    "tj-thermal",
)


class Health:
    """Counters and a latency window for one station since the node started."""

    def __init__(
        self,
        station: str,
        *,
        window: int = 1000,
        clock: Callable[[], float] = time.monotonic,
        thermal_root: Path = THERMAL_ROOT,
    ):
        self.station = station
        self._clock = clock
        self._started = clock()
        self._latencies_ms: deque[float] = deque(maxlen=window)
        self._decisions: Counter[str] = Counter()
        self.inspections = 0
        self.material_kept_kg = 0.0
        self.co2e_avoided_kg = 0.0
        self.impact_unknown = 0
        self._thermal_root = thermal_root

    def record(self, record: InspectionRecord, latency_ms: float | None = None) -> None:
        """Count one finished inspection and its trigger-to-result latency."""
        self.inspections += 1
        self._decisions[Disposition(record.effective_code()).name] += 1
        if latency_ms is not None and math.isfinite(latency_ms):
            self._latencies_ms.append(latency_ms)
        impact = record.impact
        if impact is None or not impact.known:
            self.impact_unknown += 1
            return
        self.material_kept_kg += impact.material_kept_kg or 0.0
        self.co2e_avoided_kg += impact.co2e_avoided_kg or 0.0

    def latency_ms(self) -> dict[str, float | None]:
        """p50 and p95 over the window, None before the first inspection."""
        values = sorted(self._latencies_ms)
        return {"p50": percentile(values, 50), "p95": percentile(values, 95)}

    def uptime_s(self) -> float:
        """Seconds since start."""
        return max(0.0, self._clock() - self._started)

    def circularity(self) -> dict[str, float | int]:
        """Material kept in use and CO2e avoided since start (records with known impact)."""
        return {
            "material_kept_kg": round(self.material_kept_kg, 3),
            "co2e_avoided_kg": round(self.co2e_avoided_kg, 3),
            "impact_unknown": self.impact_unknown,
        }

    def stats(
        self,
        *,
        bench: LinkState | None = None,
        broker: LinkState | None = None,
        outbox: tuple[int, float | None] = (0, None),
        model: ModelInfo | None = None,
        journal_path: str | Path | None = None,
        last_seq: int | None = None,
    ) -> Stats:
        """The figures as published on `stats`."""
        depth, oldest = outbox
        return Stats(
            ts=utc_now(),
            station=self.station,
            uptime_s=round(self.uptime_s(), 3),
            inspections=self.inspections,
            decisions=dict(self._decisions),
            latency_ms=self.latency_ms(),
            bench=bench,
            broker=broker,
            outbox_depth=depth,
            outbox_oldest_age_s=None if oldest is None else round(oldest, 3),
            model=model,
            disk_free_mb=disk_free_mb(journal_path) if journal_path else None,
            cpu_temp_c=cpu_temp_c(self._thermal_root),
            circularity=self.circularity(),
            last_seq=last_seq,
        )


def percentile(sorted_values: list[float], q: float) -> float | None:
    """The q-th percentile (nearest rank on a sorted list); None for an empty list."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return round(sorted_values[min(rank, len(sorted_values)) - 1], 3)


def disk_free_mb(path: str | Path) -> float | None:
    """Free space on the file system holding `path` (or its nearest existing parent), MB."""
    target = Path(path)
    while not target.exists() and target != target.parent:
        target = target.parent
    try:
        return round(shutil.disk_usage(target).free / 1_048_576, 1)
    except OSError:
        return None


def cpu_temp_c(root: Path = THERMAL_ROOT) -> float | None:
    """The CPU temperature from /sys/class/thermal, in deg C; None where the board has no sensor.

    Prefers a zone whose type names the CPU (Pi 5: cpu-thermal; Jetson: cpu-thermal or
    tj-thermal); falls back to the first zone that reads.
    """
    zones = sorted(root.glob("thermal_zone*")) if root.is_dir() else []
    raw = [(_read(z / "type"), _read(z / "temp")) for z in zones]
    readings = [(kind, temp) for kind, temp in raw if temp is not None]
    for kind, temp in readings:
        if kind in CPU_ZONE_TYPES:
            return _millidegrees(temp)
    return _millidegrees(readings[0][1]) if readings else None


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None


def _millidegrees(text: str) -> float | None:
    try:
        return round(int(text) / 1000, 1)
    except ValueError:
        return None
