"""The birth/death sequence number (bdSeq): one per MQTT connect, 0..255, kept across restarts.

Sparkplug 3.0 ties an NBIRTH to the NDEATH that will end its session by the `bdSeq` metric both
carry: the value in the Last Will registered at CONNECT is the one the NBIRTH of that session
repeats. A new connect takes the next value. The value is written to a file before it is used,
so a node restarted after a crash never reuses the number of a session whose NDEATH the broker
may still deliver.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from edge.errors import BrokerError

log = logging.getLogger("reman.sparkplug")

MODULUS = 256


class BdSeqStore:
    """The bdSeq counter in a small JSON file (`{"bdSeq": n}`, the last value used)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.last = self._read()

    def _read(self) -> int | None:
        try:
            value = json.loads(self.path.read_text(encoding="utf-8")).get("bdSeq")
        except FileNotFoundError:
            return None
        except (OSError, ValueError, AttributeError) as exc:
            log.warning(
                "sparkplug: unreadable bdSeq file %s (%s); starting again at 0", self.path, exc
            )
            return None
        return value if isinstance(value, int) and 0 <= value < MODULUS else None

    def next(self) -> int:
        """The value for the next connect, written to the file first; BrokerError if it cannot be."""
        value = 0 if self.last is None else (self.last + 1) % MODULUS
        tmp = self.path.with_name(self.path.name + ".tmp")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(tmp, "w", encoding="utf-8") as fh:
                json.dump({"bdSeq": value}, fh)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
        except OSError as exc:
            raise BrokerError(f"sparkplug: cannot keep bdSeq in {self.path}: {exc}") from exc
        self.last = value
        return value
