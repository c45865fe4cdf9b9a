"""Grade tables: a defect's share of the part's visible area mapped to a grade.

Defaults follow the standards coating inspectors use:
- corrosion, ISO 4628-3 degree of rusting: Ri0 0 %, Ri1 0.05 %, Ri2 0.5 %, Ri3 1 %, Ri4 8 %,
  Ri5 40-50 % (grade = the highest degree whose area is reached);
- corrosion, ASTM D610 as an alternative: grade 10 (<= 0.01 %) down to 0 (> 50 %);
- coating damage and wear on the ISO 4628 0..5 scale, with the area steps of ISO 4628-5
  (flaking): 1: 0.1 %, 2: 0.3 %, 3: 1 %, 4: 3 %, 5: 15 %.

Every table can be replaced in config. `severity(...)` puts any table on one 0..5 scale that
rises with damage, so rules work whichever table reports the grade.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass


@dataclass(frozen=True)
class GradeTable:
    """Area thresholds (percent) in ascending order; reaching threshold i gives grade i+1.

    For a descending table (ASTM D610, 10 = best) the grade is `best - steps reached`, and a
    step is reached when the area is strictly above its threshold.
    """

    name: str
    thresholds: tuple[float, ...]
    descending: bool = False
    best: int = 0

    def grade(self, area_pct: float) -> int:
        """The grade for an area share in percent (0..100)."""
        if self.descending:
            return self.best - bisect.bisect_left(self.thresholds, area_pct)
        return bisect.bisect_right(self.thresholds, area_pct)

    @property
    def worst(self) -> int:
        return 0 if self.descending else len(self.thresholds)


ISO_4628_3 = GradeTable("iso4628-3", (0.05, 0.5, 1.0, 8.0, 40.0))
ASTM_D610 = GradeTable(
    "astm-d610", (0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 16.0, 33.0, 50.0), descending=True, best=10
)
ISO_4628_SCALE = GradeTable("iso4628-5", (0.1, 0.3, 1.0, 3.0, 15.0))

# Anomaly (a departure from the good parts an anomaly model learnt, of no named kind): any
# anomalous area gives grade 1, then the ISO 4628 area steps.
ANOMALY_AREA = GradeTable("anomaly-area", (0.01, 0.3, 1.0, 3.0, 15.0))

TABLES: dict[str, GradeTable] = {
    t.name: t for t in (ISO_4628_3, ASTM_D610, ISO_4628_SCALE, ANOMALY_AREA)
}

# The kinds a segmentation or classification model learns from labelled examples (and
# vision.synth draws); `anomaly` is what a model trained on good parts only reports.
NAMED_DEFECT_TYPES: tuple[str, ...] = ("wear", "corrosion", "coating_damage")
ANOMALY = "anomaly"
# The defect types every model, grade table, record and rule speaks of: defined once, here.
DEFECT_TYPES: tuple[str, ...] = (*NAMED_DEFECT_TYPES, ANOMALY)

DEFAULT_TABLES: dict[str, GradeTable] = {
    "corrosion": ISO_4628_3,
    "coating_damage": ISO_4628_SCALE,
    "wear": ISO_4628_SCALE,
}


def tables_for(corrosion_table: str = "iso4628-3") -> dict[str, GradeTable]:
    """The per-defect tables with the chosen corrosion table."""
    return {**DEFAULT_TABLES, "corrosion": TABLES[corrosion_table]}


def severity(grade: int, scale: str) -> int:
    """A grade on any known table as a 0..5 severity that rises with damage (ISO steps)."""
    table = TABLES[scale]
    if not table.descending:
        return grade
    # ASTM D610 -> ISO 4628-3 by the area each ASTM grade allows at most.
    upper = {
        10: 0.01,
        9: 0.03,
        8: 0.1,
        7: 0.3,
        6: 1.0,
        5: 3.0,
        4: 10.0,
        3: 16.0,
        2: 33.0,
        1: 50.0,
        0: 100.0,
    }
    return ISO_4628_3.grade(upper[max(0, min(10, grade))] * 0.999)
