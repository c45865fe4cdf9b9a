"""Journal throughput: inspections per second committed with their outbox rows.

Ours: `Journal.record_next(build)`, as the station journals an inspection (the seq taken and the
record and its outbox rows [inspection, result] written in one transaction), with the journal's
defaults (WAL, synchronous=NORMAL), plus `Journal.sync()` once per batch of 20 as the outbox drain
does before publishing. Raw: the same rows (the inspections row and two outbox rows)
inserted with bare sqlite3 in one transaction per inspection, same pragmas and fsync of the WAL
every 20, same run. The ratio
is what the journal costs over the bare library (serialising the record, the seq counter, the
outbox API); `journal_over_raw` is the headline figure (1.0: as fast as bare sqlite3). For information, ours and raw with synchronous=FULL (one fsync per commit) on a
smaller run: that figure is the disk's fsync rate and moves with the machine's load.
Budget: at least 500 inspections/s.

    python bench/journal.py [--n 2000]
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from edge.journal.journal import Journal, _inspection_row  # noqa: E402
from tests.support.journal_records import make_record, messages_for  # noqa: E402

BUDGET_PER_S = 500


def ours(path: Path, records: list, synchronous: str = "NORMAL", sync_every: int = 20) -> float:
    """Seconds to journal every record with its outbox messages."""
    journal = Journal.open(path, synchronous=synchronous)
    batches = [(record, messages_for(record)) for record in records]  # the node's work, not timed
    start = time.perf_counter()
    for n, batch in enumerate(batches, start=1):
        journal.record_next(functools.partial(_drafted, batch))
        if n % sync_every == 0:
            journal.sync()
    elapsed = time.perf_counter() - start
    journal.close()
    return elapsed


def _drafted(batch: tuple, seq: int) -> tuple:
    """What the station's build step returns for `record_next` (the record has its seq)."""
    record, messages = batch
    return record, messages, []


def raw(path: Path, records: list, synchronous: str = "NORMAL", sync_every: int = 20) -> float:
    """Seconds to insert the same rows with bare sqlite3, one transaction per inspection."""
    Journal.open(path).close()  # same schema
    conn = sqlite3.connect(str(path))
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={synchronous}")
    rows = [
        (_inspection_row(r, 2, 0.0), [(r.id, m.kind, m.topic, m.payload) for m in messages_for(r)])
        for r in records
    ]
    start = time.perf_counter()
    for n, (inspection, outbox) in enumerate(rows, start=1):
        if n % sync_every == 0:
            _fsync(Path(f"{path}-wal"))
        with conn:
            conn.execute(
                "INSERT INTO inspections (id, seq, ts, station, core_id, family, part_number,"
                " code, label, credit, effective_code, effective_credit, rules_sha256,"
                " model_version, outbox_count, record, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                inspection,
            )
            conn.executemany(
                "INSERT INTO outbox (msg_id, kind, topic, payload, qos, retain,"
                " inspection_id, created_at) VALUES (?, ?, ?, ?, 1, 0, ?, 0)",
                [(i, k, t, p, i) for i, k, t, p in outbox],
            )
    elapsed = time.perf_counter() - start
    conn.close()
    return elapsed


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def main() -> None:
    """Run both and print the figures as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000, help="inspections per run")
    parser.add_argument(
        "--rounds", type=int, default=5, help="alternating runs of each; the best counts"
    )
    parser.add_argument(
        "--n-full", type=int, default=200, help="inspections per synchronous=FULL run"
    )
    args = parser.parse_args()
    n, n_full = args.n, args.n_full
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        ours_rate = raw_rate = 0.0
        for k in range(args.rounds):  # alternate, so load changes hit both alike
            records = [make_record(i) for i in range(1, n + 1)]
            ours_rate = max(ours_rate, n / ours(folder / f"ours{k}.db", records))
            raw_rate = max(raw_rate, n / raw(folder / f"raw{k}.db", records))
        full_rate = n_full / ours(
            folder / "ours-full.db", [make_record(i) for i in range(1, n_full + 1)], "FULL"
        )
        raw_full_rate = n_full / raw(
            folder / "raw-full.db", [make_record(i) for i in range(1, n_full + 1)], "FULL"
        )
    print(
        json.dumps(
            {
                "benchmark": "journal",
                "inspections": n,
                "rounds": args.rounds,
                "outbox_rows_per_inspection": 2,
                "synchronous": "NORMAL, sync() every 20",
                "journal_per_s": round(ours_rate, 1),
                "raw_sqlite3_per_s": round(raw_rate, 1),
                "journal_over_raw": round(ours_rate / raw_rate, 3),
                "budget_per_s": BUDGET_PER_S,
                "within_budget": ours_rate >= BUDGET_PER_S,
                "full_inspections": n_full,
                "journal_full_per_s": round(full_rate, 1),
                "raw_sqlite3_full_per_s": round(raw_full_rate, 1),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
