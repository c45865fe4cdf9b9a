"""A core's passport read out of the station's journal, with the hashes of its image files.

`reman passport` calls `core_passport`; `edge.contract.aas` turns the record into the AAS
environment. The image hashes are the node's to give: the gateway never sees the files.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from edge.contract import InspectionRecord
from edge.contract.identity import Issuer
from edge.contract.passport import build_passport
from edge.journal.journal import Journal


def core_passport(
    store: Journal, core_id: str, issuer: Issuer, images_dir: Path | None = None
) -> dict[str, Any]:
    """The core's passport record from the journal (NoInspections when it has none)."""
    records = store.find(core=core_id, limit=None)
    return build_passport(
        records,
        core_id,
        operator=issuer.operator,
        facility=issuer.facility,
        overrides={r.id: store.override_history(r.id) for r in records},
        image_sha256=image_hashes(records, images_dir) if images_dir else None,
    )


def image_hashes(records: Sequence[InspectionRecord], images_dir: Path) -> dict[str, str]:
    """sha256 of each of the records' image files still under `images_dir` (by file name)."""
    hashes = {}
    for name in {n for r in records for n in r.images}:
        path = images_dir / name
        if path.is_file():
            hashes[name] = hashlib.sha256(path.read_bytes()).hexdigest()
    return hashes
