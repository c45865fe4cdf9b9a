"""A station's mosquitto bridged to a plant broker (deploy/plant/), on real brokers over TLS.

station broker (station-bridge.conf) -> plant broker (plant-broker.conf, plant.acl, TLS with
client certificates) -> the gateway's own broker (gateway-bridge.conf, a durable subscription)
-> a plant gateway. The node's journal and publisher feed the station broker; the plant broker is
killed (SIGKILL) mid-stream and started again on its port; the gateway asks the node for what
the kill lost (`records/get`, gateway.gaps).
"""

from __future__ import annotations

import asyncio
import functools
import json
import signal
import time
from pathlib import Path

from edge.contract import DecisionInfo, InspectionRecord, OverrideCommand, RecordsRequest, Topics
from edge.contract.timefmt import utc_now
from edge.ids import new_id
from edge.journal import republish
from edge.journal.journal import Journal
from edge.mqtt.mosquitto import MosquittoProcess
from edge.ports import free_port
from gateway.server import Gateway
from gateway.store import InspectionFilter
from tests.conftest import REPO
from tests.gateway.conftest import WriteWatcher, make_config
from tests.plant.pki import PlantPki, make_plant_pki
from tests.support.journal_records import messages_for
from tests.support.nodes import Subscriber, as_invoker

PLANT = REPO / "deploy/plant"
STATION, SITE, LINE = "st-7", "site-a", "line-2"
GATEWAY = "plant-gateway"
PLANT_TOPIC = f"plant/{SITE}/{LINE}/reman/{STATION}"
BEFORE_OUTAGE, DURING_OUTAGE, LOST = 400, 100, 5


def render(name: str, values: dict[str, object]) -> str:
    """A shipped config with its placeholders and file paths replaced; fail on a stale one."""
    text = (PLANT / name).read_text()
    for old, new in values.items():
        assert old in text, f"{old} is not in {name}"
        text = text.replace(old, str(new))
    assert "@" not in text.replace("$SYS", ""), f"a placeholder is left in {name}"
    return text


def plant_broker(folder: Path, pki: PlantPki) -> MosquittoProcess:
    port = free_port()
    text = render(
        "plant-broker.conf",
        {
            "/etc/mosquitto/plant.acl": PLANT / "plant.acl",
            "/etc/mosquitto/certs/ca.crt": pki.ca,
            "/etc/mosquitto/certs/server.crt": pki.server_cert,
            "/etc/mosquitto/certs/server.key": pki.server_key,
            "listener 8883\n": f"listener {port} 127.0.0.1\n",
        },
    )
    # What Debian's mosquitto.conf adds on a plant host: persistence, a log.
    text += (
        f"persistence true\npersistence_location {folder}/\nlog_dest file {folder}/mosquitto.log\n"
        "log_type error\nlog_type warning\nlog_type notice\n" + as_invoker()
    )
    return MosquittoProcess(folder, port, full_config=text)


def bridge_files(pki: PlantPki, cn: str, stem: str) -> dict[str, object]:
    cert, key = pki.clients[cn]
    return {
        "/etc/mosquitto/certs/plant-ca.crt": pki.ca,
        f"/etc/mosquitto/certs/{stem}.crt": cert,
        f"/etc/mosquitto/certs/{stem}.key": key,
    }


def station_broker(folder: Path, pki: PlantPki, plant: MosquittoProcess) -> MosquittoProcess:
    bridge = render(
        "station-bridge.conf",
        {
            "@STATION@": STATION,
            "@SITE@": SITE,
            "@LINE@": LINE,
            "@PLANT_HOST@": "127.0.0.1",
            "@PLANT_PORT@": plant.port,
            **bridge_files(pki, STATION, "bridge"),
        },
    )
    return MosquittoProcess(folder, free_port(), extra_config=bridge, persistence=True)


def gateway_broker(folder: Path, pki: PlantPki, plant: MosquittoProcess) -> MosquittoProcess:
    port = free_port()
    bridge = render(
        "gateway-bridge.conf",
        {
            "@GATEWAY@": "plant-gw-1",
            "@SITE@": SITE,
            "@LINE@": LINE,
            "@PLANT_HOST@": "127.0.0.1",
            "@PLANT_PORT@": plant.port,
            "listener 1883 127.0.0.1\n": "",
            **bridge_files(pki, GATEWAY, GATEWAY),
        },
    )
    return MosquittoProcess(folder, port, extra_config=bridge + as_invoker(), persistence=True)


def new_record(journal: Journal, n: int) -> InspectionRecord:
    return InspectionRecord(
        id=new_id(),
        seq=journal.next_seq(),
        ts=utc_now(),
        station=STATION,
        core_id=f"C{n:05d}",
        decision=DecisionInfo(code=2, label="REMANUFACTURE", credit=1),
    )


def record(journal: Journal, count: int, start: int, sent: bool = True) -> list[str]:
    """Journal `count` records with their outbox messages, as the station loop does (none when
    not `sent`: records that a broker lost, whatever the kill does)."""
    ids = []
    for n in range(start, start + count):
        rec = new_record(journal, n)
        journal.record_inspection(rec, messages_for(rec) if sent else [])
        ids.append(rec.id)
    return ids


def kill(broker: MosquittoProcess) -> None:
    """SIGKILL: no DISCONNECT, no final save of the broker's state."""
    assert broker.proc is not None
    broker.proc.send_signal(signal.SIGKILL)
    broker.proc.wait()
    broker.proc = None


def bridge_state(seen, want: bytes) -> bool:
    states = [m.payload for m in seen if m.topic.endswith("/state")]
    return bool(states) and states[-1] == want


async def test_records_cross_a_plant_broker_killed_mid_stream_once_each_and_commands_come_back(
    tmp_path, node_factory, subscribers
):
    pki = make_plant_pki(tmp_path / "pki", [STATION, GATEWAY])
    plant = plant_broker(tmp_path / "plant", pki).start()
    gw_broker = gateway_broker(tmp_path / "gateway-broker", pki, plant).start()
    station = station_broker(tmp_path / "station", pki, plant).start()
    brokers = [station, gw_broker, plant]
    config = make_config(tmp_path / "gw", gw_broker)
    gaps = config.gaps.model_copy(update={"grace_s": 0.5, "retry_s": 3.0})
    gateway = Gateway(config.model_copy(update={"gaps": gaps})).start()
    try:
        assert gateway.ingest is not None and gateway.ingest.wait_connected(10)
        watcher = WriteWatcher(gateway)
        bridge = Subscriber(station.port, [f"$SYS/broker/connection/bridge-{STATION}/state"])
        gw_cert, gw_key = pki.clients[GATEWAY]
        observer = Subscriber(
            plant.port,
            [f"{PLANT_TOPIC}/inspection"],
            client_id="observer",
            durable=True,
            ca_file=str(pki.ca),
            certfile=str(gw_cert),
            keyfile=str(gw_key),
        )
        subscribers.extend([bridge, observer])
        await asyncio.to_thread(bridge.collect, lambda s: bridge_state(s, b"1"))
        overrides: asyncio.Queue[OverrideCommand] = asyncio.Queue()
        journal = Journal.open(tmp_path / "journal.db")
        answered: list[int] = []

        def answer(command: RecordsRequest) -> None:  # as edge.node wires records/get
            answered.append(
                republish.answer(
                    journal, Topics(STATION), node.events, command, notify=node.publisher.notify
                )
            )

        node = await node_factory(
            station.port,
            STATION,
            outbox=journal.outbox,
            router_kw={"on_override": overrides.put_nowait, "on_records_request": answer},
            publisher_kw={"sync": journal.sync},
        )

        def stored() -> int:
            return gateway.store.count(InspectionFilter(station=STATION))[0]

        ids = record(journal, BEFORE_OUTAGE - LOST, 0)
        ids += record(journal, LOST, BEFORE_OUTAGE - LOST, sent=False)
        node.publisher.notify()
        await asyncio.to_thread(watcher.until, lambda: stored() >= 50, 20)
        kill(plant)  # mid-stream: the node is still draining its outbox into the station broker
        assert stored() < BEFORE_OUTAGE
        await asyncio.to_thread(bridge.collect, lambda s: bridge_state(s, b"0"))
        ids += record(journal, DURING_OUTAGE, BEFORE_OUTAGE)  # queued by the station's bridge
        node.publisher.notify()
        await node.publisher.wait_drained(20)
        plant.start()
        await asyncio.to_thread(bridge.collect, lambda s: bridge_state(s, b"1"))

        # A mosquitto killed outright forgets what it had acknowledged and not yet delivered or
        # saved, and, killed before its first autosave, its bridges' sessions too: what the
        # station's bridge hands it before the gateway's bridge has subscribed again goes to
        # nobody. The station keeps inspecting (a record a second); the first of its records to
        # arrive shows the gateway the hole in its seqs, the gateway asks the node for those
        # records (records/get, over the plant broker and the bridge), and the store keeps
        # each record once. Nobody runs anything.
        def stored_all(count: int) -> bool:
            return stored() >= count

        deadline = time.monotonic() + 60
        while True:
            ids += record(journal, 1, len(ids))
            node.publisher.notify()
            try:
                await asyncio.to_thread(watcher.until, functools.partial(stored_all, len(ids)), 1.0)
                break
            except AssertionError:
                if time.monotonic() > deadline:
                    raise
        rows = list(gateway.store.iter_filtered(InspectionFilter(station=STATION)))
        assert sorted(r["id"] for r in rows) == sorted(ids)  # every record, none twice
        assert gateway.gaps is not None and gateway.gaps.pending(STATION) == []
        print(f"records sent again on the gateway's request: {sum(answered)} ({LOST} never sent)")
        assert sum(answered) >= LOST and len(answered) == gateway.gaps.asked
        missing = [
            e for e in gateway.store.events(station=STATION)[0] if e["code"] == "records_missing"
        ]
        assert missing == []

        # A plain subscriber on the plant broker: the station's records under the plant's
        # topics, the last one too (what the kill lost, it has not: only the gateway asks for
        # that again).
        seen = await asyncio.to_thread(
            observer.collect, lambda s: ids[-1] in {json.loads(m.payload)["id"] for m in s}, 20
        )
        arrived = [json.loads(m.payload)["id"] for m in seen]
        # The bridge is QoS 1: a message in flight at the kill may reach the plant twice.
        print(f"plant broker: {len(arrived)} inspections, {len(arrived) - len(set(arrived))} again")
        assert all(m.topic == f"{PLANT_TOPIC}/inspection" for m in seen)

        command = OverrideCommand(id=ids[0], code=3, reason="crack at the flange", user="erin")
        await asyncio.to_thread(gateway.ingest.publish_override, STATION, command)
        received = await asyncio.wait_for(overrides.get(), 10)
        assert (received.id, received.code, received.user) == (ids[0], 3, "erin")
        journal.close()
    finally:
        gateway.stop()
        for broker in brokers:
            broker.stop()
