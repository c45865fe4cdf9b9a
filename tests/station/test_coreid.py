"""The core id: labels (QR, Data Matrix, Code 128) drawn on generated images, source order, policy."""

from __future__ import annotations

import re

import numpy as np
import pytest
import zxingcpp

from edge.config.station import CoreIdConfig
from edge.contract import CORE_ID_PATTERN
from edge.station.coreid import read_labels, resolve_core_id, valid_core_id
from tests.support.images import textured_image


def label(text: str, fmt: str, scale: int = 4) -> np.ndarray:
    """A printed tag: the code in black on white with a quiet zone, as a grey image."""
    barcode = zxingcpp.create_barcode(text, getattr(zxingcpp.BarcodeFormat, fmt))
    return np.asarray(barcode.to_image(scale=scale, add_quiet_zones=True))


def tagged_core(text: str, fmt: str, at: tuple[int, int] = (40, 60), seed: int = 0) -> np.ndarray:
    """A generated core image with the tag stuck on it."""
    image = textured_image(seed)
    tag = label(text, fmt)
    y, x = at
    image[y : y + tag.shape[0], x : x + tag.shape[1]] = tag[..., None]
    return image


@pytest.mark.parametrize("fmt", ["QRCode", "DataMatrix", "Code128"])
def test_a_label_on_the_core_is_read(fmt):
    [found] = read_labels([tagged_core("PUMP-0042", fmt)])
    assert (found.text, found.format, found.view) == ("PUMP-0042", fmt, 1)


def test_labels_are_found_in_later_views():
    [found] = read_labels([textured_image(1), tagged_core("C1234", "QRCode", seed=2)])
    assert found.view == 2


def test_sources_are_tried_in_the_configured_order():
    image = tagged_core("LABEL-1", "QRCode")
    both = CoreIdConfig(sources=["trigger", "bench", "label"])
    assert (
        resolve_core_id(both, trigger="TRIG-1", bench="BENCH-1", images=[image]).source == "trigger"
    )
    assert resolve_core_id(both, trigger=None, bench="BENCH-1", images=[image]).core_id == "BENCH-1"
    outcome = resolve_core_id(both, trigger=None, bench="", images=[image])
    assert (outcome.core_id, outcome.source, outcome.reasons) == ("LABEL-1", "label", [])
    label_first = CoreIdConfig(sources=["label", "trigger"])
    assert resolve_core_id(label_first, trigger="TRIG-1", images=[image]).core_id == "LABEL-1"


def test_label_is_not_read_when_an_earlier_source_gave_the_id():
    def reader(images):
        raise AssertionError("labels read although the trigger named the core")

    assert resolve_core_id(CoreIdConfig(), trigger="C1", reader=reader).core_id == "C1"


def test_an_invalid_id_is_skipped_with_a_note():
    outcome = resolve_core_id(
        CoreIdConfig(sources=["bench", "label"]),
        bench="bad id with spaces",
        images=[tagged_core("https://example.com/x?y", "QRCode")],
    )
    assert outcome.source == "generated"
    assert [r.code for r in outcome.reasons] == [
        "core_id_invalid",
        "core_id_invalid",
        "core_id_missing",
    ]


def test_no_id_under_review_policy_gives_a_generated_id_and_a_reason():
    outcome = resolve_core_id(CoreIdConfig(policy="review"), images=[textured_image()])
    assert outcome.source == "generated" and not outcome.rejected
    assert re.fullmatch(CORE_ID_PATTERN, outcome.core_id) and outcome.core_id.startswith("UNREAD-")
    assert outcome.reasons[-1].code == "core_id_missing"


def test_no_id_under_reject_policy_rejects_the_core():
    outcome = resolve_core_id(CoreIdConfig(policy="reject"), images=[textured_image()])
    assert outcome.rejected and valid_core_id(outcome.core_id)


def test_generated_ids_sort_by_time():
    ids = [resolve_core_id(CoreIdConfig(sources=["trigger"])).core_id for _ in range(5)]
    assert ids == sorted(ids) and len(set(ids)) == 5


def test_two_different_labels_are_ambiguous():
    image = tagged_core("A-1", "QRCode")
    other = label("B-2", "DataMatrix")
    image[300 : 300 + other.shape[0], 400 : 400 + other.shape[1]] = other[..., None]
    outcome = resolve_core_id(CoreIdConfig(sources=["label"]), images=[image])
    assert outcome.core_id in {"A-1", "B-2"}
    assert [r.code for r in outcome.reasons] == ["core_id_ambiguous"]
