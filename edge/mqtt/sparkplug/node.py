"""The Sparkplug part of a node: its client and publisher built from the station config.

    build_sparkplug(config, events, journal) -> SparkplugPart | None   (None when disabled)

Registers the DDATA companion on the journal's outbox, so each inspection record written from
then on carries its Sparkplug row in the same transaction. When Sparkplug is off, rows left from
a time it was on are marked delivered at start rather than expiring with a warning days later.
"""

from __future__ import annotations

import logging
from pathlib import Path

from edge.config.station import StationConfig
from edge.contract.errors import ContractViolation
from edge.contract.sparkplug import SparkplugTopics
from edge.errors import BrokerError, StartupError
from edge.events import Events
from edge.journal.journal import Journal
from edge.mqtt.publisher import Publisher
from edge.mqtt.sparkplug.bdseq import BdSeqStore
from edge.mqtt.sparkplug.client import SparkplugClient
from edge.mqtt.sparkplug.metrics import KIND, Catalogue, ddata_companion

log = logging.getLogger("reman.sparkplug")


class SparkplugPart:
    """A Sparkplug client and the publisher draining `sparkplug` rows through it."""

    def __init__(self, client: SparkplugClient, publisher: Publisher):
        self.client, self.publisher = client, publisher

    async def start(self) -> None:
        """Connect in the background and start draining (births come with the connection)."""
        self.publisher.start()
        await self.client.start()
        log.info(
            "check ok: sparkplug: edge node %s, device %s",
            self.client.topics.node,
            self.client.topics.device,
        )

    async def drain(self, timeout_s: float) -> None:
        """Wait for the backlog to go out, when the session is live."""
        if not self.client.ready:
            return
        try:
            await self.publisher.wait_drained(timeout_s)
        except BrokerError as exc:
            log.warning("sparkplug: %s; the rest goes out after the next start", exc)

    async def stop(self) -> None:
        """Stop draining, publish NDEATH, disconnect."""
        await self.publisher.stop()
        await self.client.stop()


def state_path(config: StationConfig) -> Path:
    """Where the bdSeq counter is kept: `sparkplug.state_file`, or beside the journal."""
    if config.sparkplug.state_file:
        return Path(config.sparkplug.state_file)
    journal = Path(config.journal.path)
    return journal.with_name(journal.stem + ".sparkplug.json")


def build_sparkplug(
    config: StationConfig, events: Events, journal: Journal
) -> SparkplugPart | None:
    """The Sparkplug part of this station, or None when `sparkplug.enabled` is false."""
    sp = config.sparkplug
    if not sp.enabled:
        journal.outbox.discard(KIND)
        return None
    try:
        topics = SparkplugTopics(
            sp.group_id, sp.edge_node_id or config.station_id, sp.device_id or config.station_id
        )
        bdseq = BdSeqStore(state_path(config))
        client = SparkplugClient(
            topics,
            config.mqtt,
            events,
            Catalogue(config.bench.nodes if config.bench.enabled else {}),
            bdseq,
            client_id=f"{config.mqtt.client_id or 'reman-' + config.station_id}-spb",
            primary_host_id=sp.primary_host_id,
        )
    except (ContractViolation, BrokerError) as exc:
        raise StartupError(f"sparkplug: {exc}") from exc
    journal.outbox.companions.append(ddata_companion(topics.ddata))
    publisher = Publisher(
        journal.outbox,
        client,
        events,
        sync=journal.sync,
        kinds=(KIND,),
        render=client.render,
        bounds=False,  # the JSON publisher enforces the outbox bounds for every kind
        rewind_on_ready=True,
    )
    return SparkplugPart(client, publisher)
