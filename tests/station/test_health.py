"""Health figures: counts, latency percentiles, circularity sums, CPU temperature, disk free."""

from __future__ import annotations

from edge.contract import (
    Credit,
    DecisionInfo,
    Disposition,
    Impact,
    InspectionRecord,
    LinkState,
    ModelInfo,
    Stats,
)
from edge.station.health import Health, cpu_temp_c, disk_free_mb, percentile


def record(code: Disposition, impact: Impact | None = None, seq: int = 1) -> InspectionRecord:
    return InspectionRecord(
        id=f"id{seq}",
        seq=seq,
        ts="2026-11-28T16:00:00.000Z",
        station="test-1",
        core_id=f"C{seq}",
        decision=DecisionInfo(code=code, label=code.name, credit=Credit.FULL),
        impact=impact,
    )


class _Clock:
    now = 50.0

    def __call__(self):
        return self.now


def test_stats_count_decisions_latency_and_circularity(tmp_path):
    clock = _Clock()
    health = Health("test-1", clock=clock, thermal_root=tmp_path / "none")
    health.record(
        record(
            Disposition.REUSE, Impact(known=True, material_kept_kg=4.0, co2e_avoided_kg=20.5), 1
        ),
        10,
    )
    health.record(
        record(
            Disposition.REMANUFACTURE,
            Impact(known=True, material_kept_kg=3.5, co2e_avoided_kg=12.0),
            2,
        ),
        30,
    )
    health.record(record(Disposition.REVIEW, None, 3), 20)
    clock.now += 12
    stats = health.stats(
        bench=LinkState(state="connected"),
        broker=LinkState(state="disconnected"),
        outbox=(7, 3.25),
        model=ModelInfo(name="reman-seg", version="1", sha256="ab"),
        journal_path=tmp_path / "journal.db",
    )
    assert isinstance(Stats.model_validate_json(stats.model_dump_json()), Stats)
    assert stats.uptime_s == 12 and stats.inspections == 3
    assert stats.decisions == {"REUSE": 1, "REMANUFACTURE": 1, "REVIEW": 1}
    assert stats.latency_ms == {"p50": 20, "p95": 30}
    assert stats.circularity == {
        "material_kept_kg": 7.5,
        "co2e_avoided_kg": 32.5,
        "impact_unknown": 1,
    }
    assert (stats.outbox_depth, stats.outbox_oldest_age_s) == (7, 3.25)
    assert stats.disk_free_mb and stats.disk_free_mb > 0
    assert stats.cpu_temp_c is None


def test_latency_window_is_bounded():
    health = Health("test-1", window=10)
    for i in range(100):
        health.record(record(Disposition.REUSE, seq=i), float(i))
    assert health.latency_ms() == {"p50": 94, "p95": 99}


def test_percentile_of_nothing_is_none():
    assert percentile([], 50) is None
    assert percentile([5.0], 95) == 5.0


def test_cpu_temperature_prefers_the_cpu_zone(tmp_path):
    for i, (kind, milli) in enumerate([("gpu-thermal", "70000"), ("cpu-thermal", "51234")]):
        zone = tmp_path / f"thermal_zone{i}"
        zone.mkdir()
        (zone / "type").write_text(kind + "\n")
        (zone / "temp").write_text(milli + "\n")
    assert cpu_temp_c(tmp_path) == 51.2


def test_cpu_temperature_is_none_without_a_sensor(tmp_path):
    assert cpu_temp_c(tmp_path / "absent") is None


def test_disk_free_looks_at_the_nearest_existing_folder(tmp_path):
    assert disk_free_mb(tmp_path / "not" / "yet" / "journal.db") > 0
