"""Republish: queue journaled inspection records in the outbox again, to rebuild a consumer's copy.

The gateway's store is a copy of what the stations published; the journal is the system of
record. The outbox cannot rebuild the copy (delivered rows are pruned), so `republish` reads the
records from the journal (`Journal.walk`) and queues each once more as an `inspection` message,
oldest first. The node's publisher sends them like any other row (in order, QoS 1, marked
delivered on PUBACK, subject to the outbox bounds); a running node picks them up within a second.
Consumers deduplicate by the record's `id`, so republishing what they already hold is harmless.

`resend` answers a consumer's `records/get`: the records of a run of seqs that the consumer
found missing (a plant broker killed before it saved what it had acknowledged loses them), queued
the same way.

The rows are not tied to their inspection (`inspection_id` is None): a record's outbox accounting
(`outbox_count`, checked by `Journal.check`) counts the messages written with it, not these.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from edge.contract import InspectionRecord, RecordsRequest, Topics
from edge.events import Events
from edge.journal.journal import Journal
from edge.journal.outbox import OutboxMessage

CHUNK = 500
"""Records read and queued per transaction."""


def inspection_message(record: InspectionRecord, topics: Topics) -> OutboxMessage:
    """The `inspection` message of one record, as the station publishes it."""
    return OutboxMessage(
        kind="inspection",
        topic=topics.inspection,
        payload=record.to_json().encode(),
        qos=1,
        msg_id=record.id,
    )


def republish(
    journal: Journal, topics: Topics, since: str | datetime | None = None, chunk: int = CHUNK
) -> int:
    """Queue every inspection at or after `since` (all when None) again on `topics.inspection`,
    `chunk` records per committed transaction; return how many records were queued."""
    queued, batch = 0, []
    for record in journal.walk(since, chunk):
        batch.append(inspection_message(record, topics))
        if len(batch) == chunk:
            journal.outbox.add_committed(batch)
            queued, batch = queued + len(batch), []
    journal.outbox.add_committed(batch)
    return queued + len(batch)


def resend(journal: Journal, topics: Topics, from_seq: int, to_seq: int) -> tuple[int, int]:
    """Queue the journal's inspections with seq `from_seq`..`to_seq` again, in one committed
    transaction; (records queued, seqs of the run the journal does not hold)."""
    records = journal.by_seq(from_seq, to_seq)
    journal.outbox.add_committed([inspection_message(r, topics) for r in records])
    return len(records), to_seq - from_seq + 1 - len(records)


def answer(
    journal: Journal,
    topics: Topics,
    events: Events,
    command: RecordsRequest,
    *,
    notify: Callable[[], None],
) -> int:
    """`records/get`: queue the asked run again, wake the publisher (`notify`), and say what was
    done in a `records_resent` event; return how many records were queued."""
    queued, missing = resend(journal, topics, command.from_seq, command.to_seq)
    if queued:
        notify()
    run = f"{command.from_seq}..{command.to_seq}"
    held = f"; {missing} of them not in the journal" if missing else ""
    events.info(
        "records_resent",
        f"{command.user} asked for inspections {run} again: {queued} sent{held}",
        from_seq=command.from_seq,
        to_seq=command.to_seq,
        queued=queued,
        not_in_journal=missing,
        user=command.user,
        command_id=command.command_id,
    )
    return queued
