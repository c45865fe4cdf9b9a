"""TLS, passwords and the deployed ACL (deploy/raspberrypi/mosquitto/acl) on a real mosquitto."""

from __future__ import annotations

import asyncio
import queue
import subprocess

import paho.mqtt.client as mqtt
import pytest
from pydantic import SecretStr

from edge.contract.broker import TlsConfig
from edge.events import Events
from edge.journal.outbox import OutboxMessage
from edge.mqtt.client import MqttClient
from edge.mqtt.mosquitto import MosquittoProcess
from edge.ports import free_port
from tests.conftest import REPO
from tests.support.nodes import EventLog, Subscriber, add, as_invoker, fast_config
from tests.support.pki import make_pki

ACL = REPO / "deploy/raspberrypi/mosquitto/acl"
USERS = {"st1": "pw-st1", "st2": "pw-st2", "gateway": "pw-gateway", "plc": "pw-plc"}


@pytest.fixture
def pki(tmp_path):
    return make_pki(tmp_path / "pki")


@pytest.fixture
def passwords(tmp_path):
    path = tmp_path / "reman.passwd"
    for i, (user, password) in enumerate(USERS.items()):
        subprocess.run(
            ["mosquitto_passwd", *(["-c"] if i == 0 else []), "-b", str(path), user, password],
            check=True,
        )
    return path


def tls_broker(broker_factory, pki, passwords, cert=None, key=None):
    return broker_factory(
        f"cafile {pki.ca}\ncertfile {cert or pki.server_cert}\nkeyfile {key or pki.server_key}\n"
        f"require_certificate true\nallow_anonymous false\npassword_file {passwords}\nacl_file {ACL}\n"
        + as_invoker()
    )


def station_config(port, pki, tmp_path, user="st1", **tls):
    secret = tmp_path / f"{user}-password"
    secret.write_text(USERS[user] + "\n")
    return fast_config(
        port,
        username=user,
        password_file=str(secret),
        tls=TlsConfig(
            ca_file=str(pki.ca), cert_file=str(pki.client_cert), key_file=str(pki.client_key), **tls
        ),
    )


def tls_client(port, pki, user) -> mqtt.Client:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.username_pw_set(user, USERS[user])
    client.tls_set(ca_certs=str(pki.ca), certfile=str(pki.client_cert), keyfile=str(pki.client_key))
    client.connect("127.0.0.1", port)
    client.loop_start()
    return client


def gateway(port, pki) -> Subscriber:
    return Subscriber(
        port,
        ["reman/#"],
        username="gateway",
        password=USERS["gateway"],
        ca_file=str(pki.ca),
        certfile=str(pki.client_cert),
        keyfile=str(pki.client_key),
    )


@pytest.mark.expect_errors("publish_refused")
async def test_station_may_publish_only_its_own_topics(
    broker_factory, pki, passwords, tmp_path, node_factory, subscribers
):
    broker = tls_broker(broker_factory, pki, passwords)
    sub = gateway(broker.port, pki)
    subscribers.append(sub)
    node = await node_factory(broker.port, "st1", config=station_config(broker.port, pki, tmp_path))
    add(
        node.outbox,
        [
            OutboxMessage(
                "result",
                "reman/st2/result",
                b'{"seq":1,"core":"X","code":3,"credit":3,"err":0}',
                msg_id="forged",
            ),
            OutboxMessage(
                "result",
                "reman/st1/result",
                b'{"seq":1,"core":"C1","code":1,"credit":1,"err":0}',
                msg_id="own",
            ),
        ],
    )
    node.publisher.notify()
    seen = await asyncio.to_thread(
        sub.collect, lambda s: any(m.topic == "reman/st1/result" for m in s)
    )
    # The broker keeps order: had the forged result been delivered, it would have come first.
    assert not any(m.topic.startswith("reman/st2/") for m in seen)
    refused = (await node.log.wait_for("publish_refused"))[0]
    assert (
        refused.detail["topic"] == "reman/st2/result"
        and "authori" in refused.detail["reason"].lower()
    )
    await node.publisher.wait_drained(10)


async def test_gateway_may_override_and_plc_may_trigger_and_ack_but_not_override(
    broker_factory, pki, passwords, tmp_path, node_factory
):
    broker = tls_broker(broker_factory, pki, passwords)
    commands: asyncio.Queue = asyncio.Queue()
    node = await node_factory(
        broker.port,
        "st1",
        config=station_config(broker.port, pki, tmp_path),
        router_kw={
            "on_trigger": lambda c: commands.put_nowait(("trigger", c)),
            "on_ack": lambda c: commands.put_nowait(("ack", c)),
            "on_override": lambda c: commands.put_nowait(("override", c)),
        },
    )
    override = b'{"id":"i1","code":3,"reason":"crack","user":"alice"}'

    def send(user: str, items: list[tuple[str, bytes]]) -> None:
        client = tls_client(broker.port, pki, user)
        try:
            for info in [client.publish(topic, payload, qos=1) for topic, payload in items]:
                info.wait_for_publish(10)
        finally:
            client.disconnect()
            client.loop_stop()

    await asyncio.to_thread(
        send,
        "plc",
        [
            ("reman/st1/override/set", override),
            ("reman/st1/trigger/set", b'{"core":"C5"}'),
            ("reman/st1/ack/set", b'{"seq":5}'),
        ],
    )
    # One client's messages keep their order: had the PLC's override passed, it would come first.
    first = [await asyncio.wait_for(commands.get(), 10) for _ in range(2)]
    assert [kind for kind, _ in first] == ["trigger", "ack"]
    await asyncio.to_thread(send, "gateway", [("reman/st1/override/set", override)])
    kind, command = await asyncio.wait_for(commands.get(), 10)
    assert kind == "override" and command.user == "alice"
    assert node.router.rejected == 0


async def test_host_name_is_checked(broker_factory, pki, passwords, tmp_path):
    broker = tls_broker(
        broker_factory, pki, passwords, cert=pki.wrong_name_cert, key=pki.wrong_name_key
    )
    log = EventLog()
    checked = MqttClient("st1", station_config(broker.port, pki, tmp_path), Events("st1", [log]))
    await checked.start()
    try:
        await log.wait_for("broker_unreachable")
        assert not checked.connected
    finally:
        await checked.stop()
    unchecked = MqttClient(
        "st1", station_config(broker.port, pki, tmp_path, check_hostname=False), Events("st1")
    )
    await unchecked.start()
    try:
        await unchecked.wait_connected(10)
    finally:
        await unchecked.stop()


@pytest.mark.expect_errors("broker_refused")
async def test_wrong_password_over_tls_is_refused(broker_factory, pki, passwords, tmp_path):
    broker = tls_broker(broker_factory, pki, passwords)
    config = station_config(broker.port, pki, tmp_path).model_copy(
        update={"password_file": None, "password": SecretStr("nope")}
    )
    log = EventLog()
    client = MqttClient("st1", config, Events("st1", [log]))
    await client.start()
    try:
        await log.wait_for("broker_refused")
        assert client.connects == 0 and client.state.state != "connected"
    finally:
        await client.stop()


def test_the_shipped_broker_config_runs_with_tls_passwords_and_acl(
    tmp_path, pki, passwords, subscribers
):
    plain, tls = free_port(), free_port()
    text = (REPO / "deploy/raspberrypi/mosquitto/reman.conf").read_text()
    for old, new in [
        ("/etc/mosquitto/reman.passwd", passwords),
        ("/etc/mosquitto/reman.acl", ACL),
        ("/etc/mosquitto/certs/ca.crt", pki.ca),
        ("/etc/mosquitto/certs/server.crt", pki.server_cert),
        ("/etc/mosquitto/certs/server.key", pki.server_key),
        ("listener 1883 127.0.0.1\n", f"listener {plain} 127.0.0.1\n"),
        ("listener 8883\n", f"listener {tls} 127.0.0.1\n"),
    ]:
        assert old in text, old
        text = text.replace(old, str(new))
    broker = MosquittoProcess(tmp_path / "shipped", plain, full_config=text + as_invoker())
    broker.start()
    try:
        sub = Subscriber(
            tls, ["reman/#"], username="gateway", password=USERS["gateway"], ca_file=str(pki.ca)
        )
        subscribers.append(sub)
        plc = tls_client(tls, pki, "plc")
        try:
            plc.publish("reman/st1/result", b"forged", qos=1).wait_for_publish(
                10
            )  # not the PLC's to write
            plc.publish("reman/st1/available", b"forged", qos=1).wait_for_publish(10)
        finally:
            plc.disconnect()
            plc.loop_stop()
        station = tls_client(tls, pki, "st1")
        try:
            station.publish("reman/st1/stats", b"{}", qos=1).wait_for_publish(10)
        finally:
            station.disconnect()
            station.loop_stop()
        seen = sub.collect(lambda s: any(m.topic == "reman/st1/stats" for m in s))
        assert [m.topic for m in seen] == ["reman/st1/stats"]
        anonymous = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        refused: list = []
        anonymous.on_connect = lambda c, u, f, rc, p: refused.append(rc.is_failure)
        anonymous.connect("127.0.0.1", plain)
        for _ in range(100):  # the loop call waits on the socket; ten seconds at most
            if refused:
                break
            anonymous.loop(0.1)
        assert refused == [True]
        anonymous.disconnect()
    finally:
        broker.stop()


def acl_header() -> str:
    """The comment block at the top of the deployed ACL."""
    lines = ACL.read_text().splitlines()
    return " ".join(line.lstrip("# ") for line in lines[: lines.index("")])


@pytest.mark.parametrize("protocol", [mqtt.MQTTv311, mqtt.MQTTv5], ids=["mqtt3.1.1", "mqtt5"])
def test_a_refused_subscription_is_granted_and_delivers_nothing(
    broker_factory, passwords, protocol
):
    broker = broker_factory(
        f"allow_anonymous false\npassword_file {passwords}\nacl_file {ACL}\n" + as_invoker()
    )
    acks: queue.Queue = queue.Queue()
    received: queue.Queue = queue.Queue()
    plc = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=protocol)
    plc.username_pw_set("plc", USERS["plc"])
    plc.on_subscribe = lambda c, u, mid, codes, props: acks.put([c.value for c in codes])
    plc.on_message = lambda c, u, m: received.put(m.topic)
    plc.connect("127.0.0.1", broker.port)
    plc.loop_start()
    station = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    station.username_pw_set("st1", USERS["st1"])
    station.connect("127.0.0.1", broker.port)
    station.loop_start()
    try:
        # The PLC may read results, not inspections: SUBACK grants both anyway (QoS 1, not 0x87).
        plc.subscribe([("reman/st1/inspection", 1), ("reman/st1/result", 1)])
        assert acks.get(timeout=10) == [1, 1]
        for topic in ("reman/st1/inspection", "reman/st1/result"):
            station.publish(topic, b"{}", qos=1).wait_for_publish(10)
        # One publisher's messages keep their order: a delivered inspection would come first.
        assert received.get(timeout=10) == "reman/st1/result"
        assert received.empty()
    finally:
        for client in (plc, station):
            client.disconnect()
            client.loop_stop()
    header = acl_header()
    assert "granted" in header and "delivers nothing" in header, header
    assert header.count('"Not authorized"') == 1, header  # the PUBACK's, not the SUBACK's
