"""The core id: from the trigger, the bench, or a label in the image.

Remanufacturers tag cores with QR codes, Data Matrix codes or 1D barcodes (Code 128 mostly);
`read_labels` finds them with zxing-cpp. `resolve_core_id` walks `CoreIdConfig.sources` in order
and takes the first id that matches `contract.CORE_ID_PATTERN`. When none is found the policy
decides: `review` gives a generated id (`UNREAD-<time-ordered id>`) and a REVIEW reason;
`reject` marks the core rejected, and the station publishes a result with code 0 and
err `REJECTED_NO_CORE_ID`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np
import zxingcpp

from edge.config.station import CoreIdConfig
from edge.contract import CORE_ID_PATTERN, Reason
from edge.ids import new_id

GENERATED_PREFIX = "UNREAD-"
LABEL_FORMATS = (
    zxingcpp.BarcodeFormat.QRCode
    | zxingcpp.BarcodeFormat.MicroQRCode
    | zxingcpp.BarcodeFormat.DataMatrix
    | zxingcpp.BarcodeFormat.Code128
    | zxingcpp.BarcodeFormat.Code39
    | zxingcpp.BarcodeFormat.Code93
    | zxingcpp.BarcodeFormat.ITF
    | zxingcpp.BarcodeFormat.EAN13
)
_PATTERN = re.compile(CORE_ID_PATTERN)


@dataclass(frozen=True)
class LabelRead:
    """One code found in an image."""

    text: str
    format: str
    view: int  # 1-based view the code was found in


@dataclass(frozen=True)
class CoreIdOutcome:
    """The core id an inspection goes with, where it came from, and what a person should know."""

    core_id: str
    source: str  # trigger, bench, label or generated
    reasons: list[Reason] = field(default_factory=list)
    rejected: bool = False
    labels: list[LabelRead] = field(default_factory=list)


def valid_core_id(text: str | None) -> bool:
    """True when `text` is a usable core id under the contract's pattern."""
    if not text:
        return False
    return _PATTERN.fullmatch(text) is not None


def generated_core_id() -> str:
    """A placeholder id for a core whose id could not be read; sorts by time, matches the pattern."""
    return GENERATED_PREFIX + new_id()


def read_labels(images: Iterable[np.ndarray]) -> list[LabelRead]:
    """Every QR, Data Matrix and 1D code in the views, in view order (zxing-cpp)."""
    found: list[LabelRead] = []
    for view, image in enumerate(images, start=1):
        for code in zxingcpp.read_barcodes(np.ascontiguousarray(image), formats=LABEL_FORMATS):
            if code.valid and code.text:
                found.append(LabelRead(text=code.text.strip(), format=code.format.name, view=view))
    return found


def resolve_core_id(
    config: CoreIdConfig,
    *,
    trigger: str | None = None,
    bench: str | None = None,
    images: Iterable[np.ndarray] = (),
    reader: Callable[[Iterable[np.ndarray]], list[LabelRead]] = read_labels,
) -> CoreIdOutcome:
    """The core id by `config.sources` order, or the policy's outcome when none is usable.

    Blocking (label reading decodes images): run it in a thread from async code.
    """
    notes: list[Reason] = []
    labels: list[LabelRead] = []
    for source in config.sources:
        if source == "label":
            labels = reader(images)
            outcome = _from_labels(labels, notes)
        else:
            outcome = _from_value(source, trigger if source == "trigger" else bench, notes)
        if outcome is not None:
            return CoreIdOutcome(
                outcome.core_id, outcome.source, notes + outcome.reasons, labels=labels
            )
    return _unreadable(config, notes, labels)


def _from_value(source: str, value: str | None, notes: list[Reason]) -> CoreIdOutcome | None:
    value = (value or "").strip()
    if not value:
        return None
    if not valid_core_id(value):
        notes.append(
            Reason(
                code="core_id_invalid",
                text=f"core id {value[:70]!r} from the {source} does not match {CORE_ID_PATTERN}",
            )
        )
        return None
    return CoreIdOutcome(value, source)


def _from_labels(labels: list[LabelRead], notes: list[Reason]) -> CoreIdOutcome | None:
    ids = list(dict.fromkeys(lab.text for lab in labels if valid_core_id(lab.text)))
    for lab in labels:
        if not valid_core_id(lab.text):
            notes.append(
                Reason(
                    code="core_id_invalid",
                    text=f"label {lab.format} in view {lab.view} reads {lab.text[:70]!r}, not a core id",
                )
            )
    if not ids:
        return None
    reasons = []
    if len(ids) > 1:
        reasons.append(
            Reason(
                code="core_id_ambiguous",
                text=f"labels name several cores ({', '.join(ids[:4])}); took {ids[0]}",
                rule="core_id.label",
            )
        )
    return CoreIdOutcome(ids[0], "label", reasons)


def _unreadable(
    config: CoreIdConfig, notes: list[Reason], labels: list[LabelRead]
) -> CoreIdOutcome:
    looked = ", ".join(config.sources)
    if config.policy == "reject":
        reason = Reason(
            code="core_id_missing",
            text=f"no core id from {looked}; core rejected",
            rule="core_id.policy",
        )
        return CoreIdOutcome(
            generated_core_id(), "generated", notes + [reason], rejected=True, labels=labels
        )
    reason = Reason(
        code="core_id_missing",
        text=f"no core id from {looked}; a person must identify the core",
        rule="core_id.policy",
    )
    return CoreIdOutcome(generated_core_id(), "generated", notes + [reason], labels=labels)
