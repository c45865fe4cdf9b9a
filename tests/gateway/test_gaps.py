"""The gateway's gap finder: inspections missing from a station's seqs are asked for again.

The unit tests drive gateway.gaps.SeqGaps with a clock of their own; the end-to-end tests run a
gateway and a node (journal, outbox, publisher, command router) on a real mosquitto, with
records the broker never carried.
"""

from __future__ import annotations

import asyncio
import threading

import pytest

from edge.contract import Event, InspectionRecord, Stats, Topics
from edge.contract.messages import MAX_RECORDS_PER_REQUEST
from edge.contract.timefmt import utc_now
from edge.journal import republish
from edge.journal.journal import Journal
from edge.journal.outbox import OutboxMessage
from gateway.gaps import MAX_GAP, SeqGaps
from gateway.server import Gateway
from gateway.store import Batch, InspectionFilter
from tests.gateway.conftest import WriteWatcher, make_config
from tests.gateway.records import record
from tests.support.journal_records import messages_for

STATION = "st-gap"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def rec(seq: int, station: str = STATION) -> InspectionRecord:
    return record(station=station, rid=f"R{station}-{seq:06d}").model_copy(update={"seq": seq})


def batch(*seqs: int, station: str = STATION) -> Batch:
    b = Batch()
    b.inspections.extend(rec(s, station) for s in seqs)
    return b


class Finder:
    """SeqGaps with a fake clock, recording what it asks for and warns about."""

    def __init__(self, stored: dict[str, int] | None = None, **kw) -> None:
        self.clock = Clock()
        self.asked: list[tuple[str, int, int]] = []
        self.warned = []
        self.stored = stored or {}
        self.gaps = SeqGaps(
            lambda station, seq: self.stored.get(station),
            lambda station, a, b: self.asked.append((station, a, b)),
            self.warned.append,
            grace_s=5,
            retry_s=30,
            tries=2,
            clock=self.clock,
            **kw,
        )

    def after(self, seconds: float) -> list[tuple[str, int, int]]:
        self.clock.now += seconds
        before = len(self.asked)
        self.gaps.tick()
        return self.asked[before:]


def test_a_missing_run_is_asked_for_after_the_grace_and_again_until_it_comes():
    f = Finder()
    f.gaps.observe(batch(1, 2, 3, 7, 8))
    assert f.after(1) == []  # within the grace: QoS 1 may still bring them
    assert f.after(5) == [(STATION, 4, 6)]
    assert f.after(10) == []  # answered within retry_s, or asked again then
    f.gaps.observe(batch(4, 5))
    assert f.after(25) == [(STATION, 6, 6)]  # what is left: a new run, missing since 4..5 came
    f.gaps.observe(batch(6))
    assert f.gaps.pending(STATION) == []
    assert f.after(60) == [] and f.warned == []


def test_records_that_arrive_out_of_order_within_the_grace_are_not_asked_for():
    f = Finder()
    f.gaps.observe(batch(1, 3))
    f.after(2)
    f.gaps.observe(batch(2, 4))
    assert f.after(10) == [] and f.gaps.pending(STATION) == []


def test_a_run_asked_for_tries_times_becomes_a_records_missing_warning():
    f = Finder()
    f.gaps.observe(batch(1, 4))
    assert f.after(6) == [(STATION, 2, 3)]
    assert f.after(31) == [(STATION, 2, 3)]
    assert f.after(31) == []  # tries=2: given up
    (event,) = f.warned
    assert (event.station, event.level, event.code) == (STATION, "warning", "records_missing")
    assert "inspections 2..3 of st-gap never reached the gateway" in event.message
    assert event.detail["from_seq"] == 2 and event.detail["to_seq"] == 3
    f.gaps.observe(batch(6))  # tracking goes on past what was given up
    assert f.after(6) == [(STATION, 5, 5)]


def test_seqs_the_node_says_it_does_not_hold_are_reported_at_once():
    f = Finder()
    f.gaps.observe(batch(1, 2, 6))
    assert f.after(6) == [(STATION, 3, 5)]
    answer = Batch()
    answer.inspections.append(rec(4))
    answer.events.append(
        republish_event(STATION, 3, 5, queued=1, not_in_journal=2)  # 3 and 5 were pruned
    )
    f.gaps.observe(answer)
    assert f.after(1) == []
    assert sorted((e.detail["from_seq"], e.detail["to_seq"]) for e in f.warned) == [(3, 3), (5, 5)]
    assert all("not in the station's journal" in e.message for e in f.warned)
    assert f.gaps.pending(STATION) == []


def test_a_long_run_is_asked_for_in_requests_of_at_most_the_contracts_limit():
    f = Finder()
    f.gaps.observe(batch(1, 2502))
    assert f.after(6) == [(STATION, 2, 1001), (STATION, 1002, 2001), (STATION, 2002, 2501)]
    assert all(b - a < MAX_RECORDS_PER_REQUEST for _, a, b in f.asked)


def stats_batch(last_seq: int | None, station: str = STATION) -> Batch:
    b = Batch()
    b.stats.append(
        Stats(ts="2026-12-01T10:00:00.000Z", station=station, uptime_s=9, inspections=0).model_copy(
            update={"last_seq": last_seq}
        )
    )
    return b


def test_records_lost_after_the_last_one_are_asked_for_once_stats_says_the_journal_has_them():
    f = Finder()
    f.gaps.observe(batch(1, 2, 3))
    f.gaps.observe(stats_batch(3))  # nothing beyond what is stored
    f.gaps.observe(stats_batch(None))  # a node of before last_seq
    assert f.after(10) == []
    f.gaps.observe(stats_batch(6))  # the station went quiet after 6; 4..6 never came
    assert f.after(1) == []  # the grace, as for any run
    assert f.after(5) == [(STATION, 4, 6)]
    f.gaps.observe(batch(4, 5, 6))
    f.gaps.observe(stats_batch(6))
    assert f.after(60) == [] and f.gaps.pending(STATION) == []


def test_last_seq_of_an_untracked_station_or_far_ahead_asks_for_nothing():
    f = Finder()
    f.gaps.observe(stats_batch(40, station="never-stored"))  # tracking starts with a record
    f.gaps.observe(batch(1))
    f.gaps.observe(stats_batch(2 + MAX_GAP))  # another node under this id, or an old copy
    assert f.after(60) == [] and f.warned == []
    f.gaps.observe(stats_batch(3))
    assert f.after(10) == [(STATION, 2, 3)]


def test_a_jump_wider_than_max_gap_is_reported_and_not_asked_for():
    f = Finder()
    f.gaps.observe(batch(1, MAX_GAP + 10))
    assert f.after(6) == []
    (event,) = f.warned
    assert "jumped" in event.message and event.detail["to_seq"] == MAX_GAP + 9


def test_each_station_is_tracked_on_its_own_from_the_highest_stored_seq_below_its_first():
    f = Finder(stored={"st-a": 40})  # st-a has 1..40 (say) in the store; st-b nothing yet
    f.gaps.observe(batch(45, station="st-a"))
    f.gaps.observe(batch(500, 502, station="st-b"))  # a new station: from its first record on
    assert sorted(f.after(6)) == [("st-a", 41, 44), ("st-b", 501, 501)]


def test_the_store_gives_the_highest_seq_below_the_first_seen(make_store):
    store = make_store()
    b = Batch()
    b.inspections.extend([rec(3), rec(9), rec(20), rec(5, station="other")])
    store.write(b)
    assert store.max_seq_below(STATION, 20) == 9
    assert store.max_seq_below(STATION, 3) is None
    assert store.max_seq_below("other", 100) == 5


def republish_event(station, first, last, **detail):
    return Event(
        id=f"ev-{first}-{last}",
        ts="2026-12-01T10:00:00.000Z",
        station=station,
        level="info",
        code="records_resent",
        message="sent again",
        detail={"from_seq": first, "to_seq": last, **detail},
    )


# ---------------------------------------------------------------- end to end on mosquitto


def journal_records(journal: Journal, count: int, unsent: set[int]) -> list[str]:
    """Journal `count` records; those whose seq is in `unsent` get no outbox messages (as if a
    broker had lost them). Return the ids."""
    ids = []
    for _ in range(count):
        seq = journal.next_seq()
        r = rec(seq).model_copy(update={"core_id": f"C{seq:05d}"})
        journal.record_inspection(r, [] if seq in unsent else messages_for(r))
        ids.append(r.id)
    return ids


async def start_node(node_factory, port, journal: Journal):
    """A node whose router answers `records/get` from `journal`, and whose events go out on
    `event` through the outbox, as edge.node wires them."""
    node_box = {}

    def answer(command):
        node = node_box["node"]
        return republish.answer(
            journal, Topics(STATION), node.events, command, notify=node.publisher.notify
        )

    node = await node_factory(
        port,
        STATION,
        outbox=journal.outbox,
        router_kw={"on_records_request": answer},
        publisher_kw={"sync": journal.sync},
    )
    node_box["node"] = node
    topic = Topics(STATION).event
    node.events.add_sink(
        lambda e: (
            journal.outbox.add_committed([OutboxMessage.for_event(e, topic)]),
            node.publisher.notify(),
        )
    )
    return node


@pytest.fixture
def broker(broker_factory):
    """A broker of the test's own: the node leaves its retained availability behind."""
    return broker_factory()


@pytest.fixture
def gap_gateway(tmp_path, broker):
    config = make_config(tmp_path / "gw", broker)
    config = config.model_copy(
        update={"gaps": config.gaps.model_copy(update={"grace_s": 0.3, "retry_s": 2.0})}
    )
    gateway = Gateway(config).start()
    assert gateway.ingest is not None and gateway.ingest.wait_connected(10)
    yield gateway
    gateway.stop()


def stored_ids(gateway: Gateway) -> list[str]:
    return [r["id"] for r in gateway.store.iter_filtered(InspectionFilter(station=STATION))]


def station_events(gateway: Gateway, code: str) -> list[dict]:
    return [e for e in gateway.store.events(station=STATION)[0] if e["code"] == code]


async def test_the_gateway_gets_records_the_broker_never_carried_from_the_nodes_journal(
    tmp_path, broker, node_factory, gap_gateway
):
    watcher = WriteWatcher(gap_gateway)
    journal = Journal.open(tmp_path / "journal.db")
    node = await start_node(node_factory, broker.port, journal)
    ids = journal_records(journal, 12, unsent={4, 5, 6, 7})
    node.publisher.notify()

    await asyncio.to_thread(watcher.until, lambda: len(stored_ids(gap_gateway)) == 12, 20)
    assert sorted(stored_ids(gap_gateway)) == sorted(ids)  # every record, each once
    resent = await asyncio.to_thread(
        watcher.until, lambda: station_events(gap_gateway, "records_resent"), 10
    )
    assert resent[0]["level"] == "info"
    assert "asked for inspections 4..7 again: 4 sent" in resent[0]["message"]
    assert station_events(gap_gateway, "records_missing") == []
    journal.close()


async def test_seqs_pruned_from_the_journal_become_a_records_missing_warning_on_the_events_page(
    tmp_path, broker, node_factory, gap_gateway
):
    watcher = WriteWatcher(gap_gateway)
    journal = Journal.open(tmp_path / "journal.db")
    node = await start_node(node_factory, broker.port, journal)
    journal_records(journal, 2, unsent=set())
    journal.next_seq()  # seq 3 is not in the journal (as if retention had pruned it)
    journal_records(journal, 2, unsent=set())
    node.publisher.notify()

    missing = await asyncio.to_thread(
        watcher.until, lambda: station_events(gap_gateway, "records_missing"), 20
    )
    assert missing[0]["level"] == "warning"
    assert (
        "inspections 3 of st-gap never reached the gateway (not in the station's journal)"
        in (missing[0]["message"])
    )
    assert len(stored_ids(gap_gateway)) == 4
    assert gap_gateway.gaps is not None and gap_gateway.gaps.pending(STATION) == []
    journal.close()


async def test_the_last_records_of_a_station_gone_quiet_come_from_its_journal_after_its_stats(
    tmp_path, broker, node_factory, gap_gateway
):
    watcher = WriteWatcher(gap_gateway)
    journal = Journal.open(tmp_path / "journal.db")
    node = await start_node(node_factory, broker.port, journal)
    ids = journal_records(journal, 5, unsent={4, 5})  # the last two lost; no record after them
    node.publisher.notify()
    await asyncio.to_thread(watcher.until, lambda: len(stored_ids(gap_gateway)) == 3, 20)
    stats = Stats(
        ts=utc_now(), station=STATION, uptime_s=30, inspections=5, last_seq=journal.last_seq()
    )
    topic = Topics(STATION).stats
    journal.outbox.add_committed(
        [OutboxMessage(kind="stats", topic=topic, qos=0, payload=stats.model_dump_json().encode())]
    )
    node.publisher.notify()

    await asyncio.to_thread(watcher.until, lambda: len(stored_ids(gap_gateway)) == 5, 20)
    assert sorted(stored_ids(gap_gateway)) == sorted(ids)
    resent = await asyncio.to_thread(
        watcher.until, lambda: station_events(gap_gateway, "records_resent"), 10
    )
    assert "asked for inspections 4..5 again: 2 sent" in resent[0]["message"]
    journal.close()


def test_a_gateway_without_the_gap_finder_asks_for_nothing(tmp_path, mosquitto):
    config = make_config(tmp_path / "gw", mosquitto)
    config = config.model_copy(update={"gaps": config.gaps.model_copy(update={"enabled": False})})
    with Gateway(config) as gateway:
        assert gateway.gaps is None
        assert not [t for t in threading.enumerate() if t.name == "gateway-gaps"]
