"""A record committed before its image files: `record_next(images_later=True)`, `record_images`."""

from __future__ import annotations

from edge.journal.journal import Journal, image_file, write_image
from edge.journal.outbox import OutboxMessage
from tests.support.journal_records import make_record, messages_for


def _record_later(journal: Journal, names: list[str]):
    def build(seq):
        record = make_record(seq).model_copy(update={"images": names})
        return record, messages_for(record), []

    return journal.record_next(build, images_later=True)


def test_images_after_the_record_join_its_outbox_accounting(tmp_path):
    images = tmp_path / "images"
    with Journal.open(tmp_path / "journal.db") as journal:
        record = _record_later(journal, ["d/1-v1.jpg", "d/1-v1-overlay.jpg"])
        assert [r.id for r in journal.unwritten_images()] == [record.id]
        assert journal.check() == []
        files = [
            write_image(images / "d/1-v1.jpg", b"\xff\xd8raw"),
            write_image(images / "d/1-v1-overlay.jpg", b"\xff\xd8overlay"),
        ]
        snapshot = OutboxMessage(
            "snapshot", "reman/s/snapshot", b"\xff\xd8overlay", msg_id=record.id
        )
        journal.record_images(record.id, files, [snapshot])
        assert journal.unwritten_images() == []
        assert [(i["kind"], i["size"]) for i in journal.images(record.id)] == [
            ("raw", 5),
            ("overlay", 9),
        ]
        kinds = [(m.kind, m.inspection_id) for m in journal.outbox.pending()]
        assert kinds == [(k, record.id) for k in ("inspection", "result", "snapshot")]
        journal.outbox.mark_delivered([m.id for m in journal.outbox.pending()])
        journal.outbox.prune_delivered(older_than_s=-1)
        assert journal.check() == [], "pruned rows are counted, the snapshot's too"


def test_records_left_without_images_survive_a_restart(tmp_path):
    path = tmp_path / "journal.db"
    raw = tmp_path / "images/d/1-v1.jpg"
    with Journal.open(path) as journal:
        record = _record_later(journal, ["d/1-v1.jpg", "d/1-v1-overlay.jpg"])
        write_image(raw, b"\xff\xd8raw")  # the node stops before the overlay and the commit
    with Journal.open(path) as journal:
        (left,) = journal.unwritten_images()
        assert left == record
        journal.record_images(record.id, [image_file(raw)])
        assert [i["path"] for i in journal.images(record.id)] == [str(raw)]
        assert journal.unwritten_images() == [] and journal.check() == []
