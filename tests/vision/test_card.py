"""Model cards: stored in the ONNX metadata and beside it, checked against the graph."""

from __future__ import annotations

import json

import onnx
import pytest

from tests.vision.toy_models import (
    classification_card,
    colour_classifier,
    colour_segmenter,
    segmentation_card,
)
from vision._onnx import open_session
from vision.card import METADATA_KEY, card_path, check_card, read_card, write_card
from vision.errors import CardMismatch, ModelError
from vision.grader import Grader


@pytest.fixture
def seg_model(tmp_path):
    return colour_segmenter(tmp_path / "seg.onnx")


@pytest.fixture
def seg_session(seg_model):
    return open_session(seg_model, ["CPUExecutionProvider"])


def test_card_is_embedded_and_beside(seg_model):
    beside = card_path(seg_model)
    assert beside.name == "seg.card.json"
    assert json.loads(beside.read_text())["name"] == "toy-seg"
    props = {p.key: p.value for p in onnx.load(str(seg_model)).metadata_props}
    assert json.loads(props[METADATA_KEY])["input_name"] == "image"
    assert read_card(seg_model) == segmentation_card()


def test_card_beside_only_is_enough(seg_model):
    model = onnx.load(str(seg_model))
    del model.metadata_props[:]
    onnx.save(model, str(seg_model))
    assert read_card(seg_model).name == "toy-seg"


def test_embedded_card_only_is_enough(seg_model):
    card_path(seg_model).unlink()
    assert read_card(seg_model).name == "toy-seg"


def test_no_card_is_refused(seg_model):
    card_path(seg_model).unlink()
    model = onnx.load(str(seg_model))
    del model.metadata_props[:]
    onnx.save(model, str(seg_model))
    with pytest.raises(ModelError, match=r"no model card .*seg\.card\.json"):
        read_card(seg_model)


def test_embedded_and_beside_must_agree(seg_model):
    card_path(seg_model).write_text(
        segmentation_card(version="2", input_size=(32, 32)).model_dump_json()
    )
    with pytest.raises(CardMismatch, match=r"differ in version, input_size"):
        read_card(seg_model)


def test_invalid_card_names_the_field(seg_model):
    card_path(seg_model).write_text('{"name": "x"}')
    with pytest.raises(
        ModelError, match=r"seg\.card\.json: invalid model card: version: Field required"
    ):
        read_card(seg_model)


def test_matching_card_passes(seg_session):
    check_card(segmentation_card(), seg_session)


@pytest.mark.parametrize(
    "changes,message",
    [
        ({"input_name": "pixels"}, "input name: card says 'pixels', graph has ['image']"),
        ({"input_size": (32, 48)}, "input size (HxW): card says [32, 48], graph has [64, 64]"),
        (
            {"color_order": "GRAY", "mean": [0.0], "std": [1.0]},
            "input channels: card says 1 (GRAY, NCHW), graph has 3",
        ),
        ({"layout": "NHWC"}, "input channels: card says 3 (RGB, NHWC), graph has 64 at axis 3"),
        ({"output_names": ["masks"]}, "output names: card says ['masks'], graph has ['probs']"),
        (
            {"classes": ["part", "corrosion"]},
            "classes: card says 2 ['part', 'corrosion'], graph output 'probs' has 4 channels",
        ),
        ({"classes": ["body", "wear", "corrosion", "coating_damage"]}, "lack 'part'"),
        (
            {"classes": ["part", "wear", "corrosion", "dents"]},
            "classes ['dents'] have no grade table",
        ),
        (
            {"classes": ["part", "wear", "corrosion", "anomaly"]},
            "classes ['anomaly'] have no grade table",
        ),
        ({"mean": [0.5, 0.5]}, "mean has 2 values for 3 input channel(s) (RGB)"),
        ({"std": [1.0, 0.0, 1.0]}, "std contains 0"),
    ],
)
def test_each_mismatch_says_what_differs(seg_session, changes, message):
    with pytest.raises(CardMismatch) as caught:
        check_card(segmentation_card(**changes), seg_session, "models/x.onnx")
    assert str(caught.value).startswith("models/x.onnx: model card does not match the model: ")
    assert message in str(caught.value)


def test_several_differences_are_all_listed(seg_session):
    with pytest.raises(CardMismatch) as caught:
        check_card(segmentation_card(input_name="x", output_names=["y"]), seg_session)
    assert "input name: card says 'x'" in str(caught.value)
    assert "output names: card says ['y']" in str(caught.value)


def test_segmentation_card_on_classifier_says_rank(tmp_path):
    session = open_session(colour_classifier(tmp_path / "cls.onnx"), ["CPUExecutionProvider"])
    card = segmentation_card(output_names=["scores"])
    with pytest.raises(
        CardMismatch,
        match=r"output 'scores' rank: card says 4 \(segmentation, NCHW\), graph has 2 1x3",
    ):
        check_card(card, session)


def test_classification_card_needs_every_label_mapped(tmp_path):
    session = open_session(colour_classifier(tmp_path / "cls.onnx"), ["CPUExecutionProvider"])
    card = classification_card()
    check_card(card, session)
    unmapped = card.model_copy(
        update={"label_map": {k: v for k, v in card.label_map.items() if k != "worn"}}
    )
    with pytest.raises(CardMismatch, match=r"label_map has no entry for class\(es\) \['worn'\]"):
        check_card(unmapped, session)


def test_classification_label_map_names_known_defects(tmp_path):
    session = open_session(colour_classifier(tmp_path / "cls.onnx"), ["CPUExecutionProvider"])
    card = classification_card()
    bad = card.model_copy(
        update={
            "label_map": card.label_map
            | {"rusty": card.label_map["rusty"].model_copy(update={"defect": "rust"})}
        }
    )
    with pytest.raises(CardMismatch, match=r"unknown defect type\(s\) \['rust'\]"):
        check_card(bad, session)


def test_grader_refuses_a_mismatched_model(tmp_path):
    path = colour_segmenter(tmp_path / "seg.onnx", segmentation_card(input_size=(128, 128)))
    with pytest.raises(
        CardMismatch,
        match=r"seg\.onnx: .*input size \(HxW\): card says \[128, 128\], graph has \[64, 64\]",
    ):
        Grader.load(path)


def test_write_card_replaces_the_old_card(seg_model):
    write_card(seg_model, segmentation_card(version="3"))
    props = [p for p in onnx.load(str(seg_model)).metadata_props if p.key == METADATA_KEY]
    assert len(props) == 1
    assert read_card(seg_model).version == "3"
