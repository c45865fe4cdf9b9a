"""Republish: queue journaled inspection records in the outbox again, to rebuild a consumer's copy.

The gateway's store is a copy of what the stations published; the journal is the system of
record. The outbox cannot rebuild the copy (delivered rows are pruned), so `republish` reads the
records from the journal (`Journal.walk`) and queues each once more as an `inspection` message,
oldest first. The node's publisher sends them like any other row (in order, QoS 1, marked
delivered on PUBACK, subject to the outbox bounds); a running node picks them up within a second.
Consumers deduplicate by the record's `id`, so republishing what they already hold is harmless.

The rows are not tied to their inspection (`inspection_id` is None): a record's outbox accounting
(`outbox_count`, checked by `Journal.check`) counts the messages written with it, not these.
"""

from __future__ import annotations

from datetime import datetime

from edge.contract import InspectionRecord, Topics
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
