"""Shadow mode: a candidate model grades each inspection beside the active one, deciding nothing.

The station offers every finished inspection (after its result went out, so the PLC never waits
for the candidate). The shadow grades it on a thread of its own and decides with the same family
rules, measurements and image problems; the outcome goes into the journal beside the inspection
(edge.journal.shadow), where `agreement` compares the two models, and, when a `report` callback
is given, a ShadowReport (the `shadow` topic) puts the candidate's grades and would-be decision
beside the active model's. One inspection at a time: an inspection offered while the shadow is
still busy is skipped and counted, never queued.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np

from edge.contract import DecisionInfo, DefectResult, Disposition, ShadowReport
from edge.contract.timefmt import UTC, utc_now
from edge.decision.rules import decide
from edge.errors import JournalError
from edge.events import Events
from edge.journal.journal import Journal
from edge.journal.shadow import record_shadow
from edge.station.grades import defects_of
from vision.errors import VisionError

log = logging.getLogger("reman.shadow")


@dataclass(frozen=True)
class ShadowInput:
    """What the active model decided on, for the shadow to decide on too."""

    inspection_id: str
    images: list[np.ndarray]
    family: Any  # a FamilyConfig or None
    measurements: dict[str, Any]
    image_problems: list[str]
    active_version: str | None = None
    active_defects: dict[str, DefectResult] = field(default_factory=dict)
    active_code: Disposition = Disposition.NONE


class Shadow:
    """Runs one candidate grader; see the module docstring."""

    def __init__(
        self,
        grader: Any,
        journal: Journal,
        events: Events,
        sha256: str = "",
        report: Callable[[ShadowReport], None] | None = None,
    ):
        self.grader = grader
        self.journal = journal
        self.events = events
        self.sha256 = sha256
        self.report = report
        self.version = grader.card.version
        self.done = 0
        self.skipped = 0
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="shadow")
        self._task: asyncio.Task | None = None

    @property
    def busy(self) -> bool:
        return self._task is not None and not self._task.done()

    def offer(self, item: ShadowInput) -> bool:
        """Grade `item` in the background; False (and counted) when still busy with the last."""
        if self.busy:
            self.skipped += 1
            return False
        self._task = asyncio.ensure_future(self._run(item))
        return True

    async def drain(self) -> None:
        """Wait for the inspection in hand, then free the thread."""
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
        self._executor.shutdown(wait=False)

    async def _run(self, item: ShadowInput) -> None:
        loop = asyncio.get_running_loop()
        try:
            graded = await loop.run_in_executor(
                self._executor, self.grader.grade_views, item.images
            )
            defects = defects_of(graded)
            decision = decide(
                item.family,
                {k: v.model_dump() for k, v in defects.items()},
                dict(item.measurements),
                item.image_problems,
                now=datetime.now(UTC),
            )
            record_shadow(self.journal, item.inspection_id, self.version, self.sha256, defects,
                          decision)  # fmt: skip
            self.done += 1
            if self.report is not None:
                self.report(self._report(item, defects, decision))
        except (VisionError, JournalError) as exc:
            self.events.warning(
                "shadow_failed",
                f"shadow model {self.version} could not grade inspection {item.inspection_id}: {exc}",
                inspection_id=item.inspection_id,
                version=self.version,
            )

    def _report(
        self, item: ShadowInput, defects: dict[str, DefectResult], decision: DecisionInfo
    ) -> ShadowReport:
        return ShadowReport(
            id=item.inspection_id,
            station=self.events.station,
            ts=utc_now(),
            candidate=self.version,
            active=item.active_version,
            defects=defects,
            active_defects=item.active_defects,
            code=decision.code,
            active_code=item.active_code,
        )
