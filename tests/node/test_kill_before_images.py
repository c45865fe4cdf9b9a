"""A node killed after committing and publishing a result, before writing the record's images.

The station commits the record and publishes its result first, then writes the JPEGs. Here the
first image write blocks (a FIFO lies where the atomic write puts its temporary file), the PLC
gets its result, and the node is killed with SIGKILL. After the restart an operator sees the
decision as it was published, an `images_not_written` warning naming the files that never were,
a clear refusal when asking for the photograph, and a station that inspects as before.
"""

from __future__ import annotations

import asyncio
import json
import os
from datetime import datetime, timedelta, timezone
from pathlib import Path

from edge.journal.journal import Journal
from tests.node.test_node_process import NodeProcess
from tests.support.stations import clean_core, station_config, write_config, write_folder


def block_first_image_write(images_dir: Path) -> None:
    """A FIFO where seq 1's first JPEG is written: the write waits for a reader that never comes.

    Today's folder and tomorrow's, in case the test runs across midnight (UTC).
    """
    today = datetime.now(timezone.utc)
    for day in (today, today + timedelta(days=1)):
        folder = images_dir / day.strftime("%Y-%m-%d")
        folder.mkdir(parents=True, exist_ok=True)
        os.mkfifo(folder / "00000001-v1.jpg.tmp")


def on(prefix: str, kind: str, **fields):
    """A predicate for a message on `<prefix>/<kind>` whose JSON holds `fields`."""

    def matches(message) -> bool:
        if message.topic != f"{prefix}/{kind}":
            return False
        payload = json.loads(message.payload)
        return all(payload.get(k) == v for k, v in fields.items())

    return matches


async def test_sigkill_between_commit_and_images_keeps_the_decision_and_says_what_is_missing(
    tmp_path, mosquitto, listener_factory
):
    camera = write_folder(tmp_path / "cores", [clean_core()])
    data = station_config(tmp_path, mosquitto, camera=camera)
    config = write_config(tmp_path / "station.yaml", data)
    images_dir = Path(data["journal"]["images_dir"])
    block_first_image_write(images_dir)
    prefix = f"reman/{data['station_id']}"
    listener = listener_factory(mosquitto, f"{prefix}/#")

    def wait(predicate, timeout_s=60):
        return asyncio.to_thread(listener.wait_for, predicate, timeout_s)

    node = NodeProcess(config)
    try:
        await asyncio.to_thread(node.wait_line, "node_started")
        listener.client.publish(f"{prefix}/trigger/set", '{"core":"HGP-000801"}', qos=1)
        result = json.loads((await wait(on(prefix, "result", core="HGP-000801"))).payload)
        published = json.loads((await wait(on(prefix, "inspection", seq=1))).payload)
        node.proc.kill()  # the image write is still waiting on the FIFO
        node.proc.wait(10)
    finally:
        node.stop()
    with Journal.open(data["journal"]["path"]) as journal:
        assert [r.id for r in journal.unwritten_images()] == [published["id"]]
        queued = journal.db.conn.execute(
            "SELECT kind FROM outbox WHERE inspection_id = ? ORDER BY id", (published["id"],)
        ).fetchall()
    assert [kind for (kind,) in queued] == ["result", "inspection"], "no snapshot yet"

    node = NodeProcess(config)
    try:
        event = json.loads((await wait(on(prefix, "event", code="images_not_written"))).payload)
        ask = {"id": published["id"], "view": 1, "user": "erin", "command_id": "f801"}
        listener.client.publish(f"{prefix}/frame/get", json.dumps(ask), qos=1)
        frame = json.loads((await wait(on(prefix, "frame", command_id="f801"))).payload)
        listener.client.publish(f"{prefix}/trigger/set", '{"core":"HGP-000802"}', qos=1)
        second = json.loads((await wait(on(prefix, "inspection", seq=2))).payload)
        await wait(lambda m: m.topic == f"{prefix}/snapshot" and m.payload[:2] == b"\xff\xd8")
    finally:
        node.stop()

    assert (result["seq"], result["err"]) == (1, 0)
    assert result["code"] == published["decision"]["code"], "the decision went out as made"
    assert event["level"] == "warning"
    assert event["detail"]["seq"] == 1 and event["detail"]["core_id"] == "HGP-000801"
    assert event["detail"]["missing"] == published["images"]
    assert "were not written: the node stopped before writing them" in event["message"]
    assert "the decision stands" in event["message"]
    assert frame["error"] and "no raw frame for view 1" in frame["error"]
    with Journal.open(data["journal"]["path"]) as journal:
        assert journal.check() == [], "the journal is consistent"
        assert journal.unwritten_images() == []
        first = journal.get(published["id"])
        assert first is not None and first.model_dump(mode="json", by_alias=True) == published
        assert journal.images(published["id"]) == [], "no image is offered that does not exist"
        rows = journal.images(second["id"])
    assert [row["kind"] for row in rows] == ["raw", "overlay"]
    assert all(Path(row["path"]).is_file() for row in rows)
    day = images_dir / published["ts"][:10]
    assert not list(day.glob("00000001-*")), "the FIFO was cleared, nothing else left"
