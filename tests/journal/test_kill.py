"""kill -9 a journal writer at random moments, many times: the journal stays consistent.

The writer is a forked process that records inspections with their outbox rows and images in a
loop, overrides some, and delivers and prunes outbox rows, reporting each committed id through a
pipe. The test waits for a random number of reports (not for time), then kills it with SIGKILL.
"""

from __future__ import annotations

import multiprocessing
import os
import random
import signal
import time

import pytest

from edge.contract.timefmt import utc_now
from edge.journal.journal import Journal, PendingTrigger
from tests.support.journal_records import make_record, messages_for

KILLS = 24


def writer(path: str, images_dir: str, conn) -> None:
    """Write forever; send each committed inspection id."""
    journal = Journal.open(path)
    n = 0
    while True:
        n += 1
        record = make_record(journal.next_seq(), core_id=f"HGP-{n % 50:04d}")
        images = (
            [(os.path.join(images_dir, f"{record.id}.jpg"), os.urandom(2048))] if n % 3 == 0 else []
        )
        journal.record_inspection(record, messages_for(record), images)
        conn.send(("inspection", record.id))
        if n % 4 == 0:
            journal.apply_override(
                record.id, 2, "worn seal", "op", command_id=record.id, make_messages=messages_for
            )
            conn.send(("override", record.id))
        if n % 5 == 0:
            journal.outbox.mark_delivered([m.id for m in journal.outbox.pending(limit=7)])
            journal.outbox.prune_delivered(older_than_s=-1)


def test_sigkill_at_random_moments_leaves_the_journal_consistent(tmp_path):
    path, images = str(tmp_path / "journal.db"), tmp_path / "images"
    images.mkdir()
    ctx = multiprocessing.get_context("fork")
    rng = random.Random(20261128)
    committed, overridden = set(), set()
    for _ in range(KILLS):
        receive, send = ctx.Pipe(duplex=False)
        process = ctx.Process(target=writer, args=(path, str(images), send), daemon=True)
        process.start()
        send.close()
        for _ in range(rng.randint(1, 12)):
            assert receive.poll(30), "writer made no progress"
            try:
                kind, inspection_id = receive.recv()
            except EOFError:
                process.join(10)
                pytest.fail(
                    f"writer died with exit code {process.exitcode} (see its traceback above)"
                )
            (committed if kind == "inspection" else overridden).add(inspection_id)
        time.sleep(rng.uniform(0, 0.004))  # spreads the kill over the writer's next steps
        os.kill(process.pid, signal.SIGKILL)
        process.join(10)
        assert process.exitcode == -signal.SIGKILL
        receive.close()
    with Journal.open(path) as journal:  # runs the integrity check
        assert journal.check() == []
        stored = {r.id: r for r in journal.find(limit=None)}
        assert committed <= set(stored), "a reported commit was lost"
        assert all(stored[i].override is not None for i in overridden)
        assert all(len(journal.overrides(i)) == 1 for i in overridden)
        assert journal.next_seq() > max(r.seq for r in stored.values())
        seqs = sorted(r.seq for r in stored.values())
        assert len(set(seqs)) == len(seqs)


def killed_mid_record(path: str, conn) -> None:
    """Accept a trigger, then die inside the record's transaction, as a power cut would."""
    journal = Journal.open(path)
    journal.accept_trigger(PendingTrigger("t-killed", "mqtt", "HGP-0042", None, utc_now()))

    def build(seq: int):
        conn.send(seq)
        os.kill(os.getpid(), signal.SIGKILL)  # never returns

    journal.record_next(build, trigger_id="t-killed")


def test_a_kill_inside_the_record_burns_no_seq_and_keeps_the_trigger(tmp_path):
    path = str(tmp_path / "journal.db")
    with Journal.open(path) as journal:
        first = journal.record_next(lambda seq: (make_record(seq), [], []))
    ctx = multiprocessing.get_context("fork")
    receive, send = ctx.Pipe(duplex=False)
    process = ctx.Process(target=killed_mid_record, args=(path, send), daemon=True)
    process.start()
    send.close()
    assert receive.poll(30) and receive.recv() == first.seq + 1  # it had taken the next seq
    process.join(30)
    assert process.exitcode == -signal.SIGKILL
    with Journal.open(path) as journal:
        assert [t.id for t in journal.interrupted_triggers()] == ["t-killed"]
        assert journal.count() == 1 and journal.check() == []
        again = journal.record_next(lambda seq: (make_record(seq), [], []), trigger_id="t-killed")
        assert again.seq == first.seq + 1  # no gap: the killed transaction took nothing
        assert journal.interrupted_triggers() == []
