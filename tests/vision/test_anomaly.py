"""`reman train --task anomaly` on generated good parts: the model, its card, the grader, the CLI."""

from __future__ import annotations

import json

import cv2
import numpy as np
import onnxruntime as ort
import pytest
from click.testing import CliRunner

torch = pytest.importorskip("torch")

from reman.cli import cli  # noqa: E402
from tests.vision.photo_sets import draw_defect, surface  # noqa: E402
from vision.card import check_card, read_card, write_card  # noqa: E402
from vision.errors import CardMismatch  # noqa: E402
from vision.grader import Grader  # noqa: E402
from vision.overlay import OVERLAY_COLOURS, draw_overlay  # noqa: E402
from vision.training.anomaly import (  # noqa: E402
    MAP_OUTPUT,
    SCORE_OUTPUT,
    AnomalySettings,
    anomaly_maps,
    greedy_coreset,
)
from vision.training.fit_anomaly import INPUT_NAME, train_anomaly  # noqa: E402
from vision.training.fit_photos import TrainSettings  # noqa: E402

SIZE = 64
SETTINGS = TrainSettings(size=SIZE, val_split=0.25, seed=0, threads=1)


def good_folder(folder, count, seed):
    """`count` drawn good parts (textured grey surfaces) as PNGs."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(count):
        cv2.imwrite(str(folder / f"good_{i}.png"), surface(rng, SIZE))
    return folder


def parts(count, seed, defect=None):
    """New parts as BGR images, each with a dark spot or scratch when `defect` names one."""
    rng = np.random.default_rng(seed)
    images = []
    for _ in range(count):
        image = surface(rng, SIZE)
        if defect:
            draw_defect(image, defect, rng)
        images.append(image)
    return images


def rgb(images):
    return np.stack([cv2.cvtColor(image, cv2.COLOR_BGR2RGB) for image in images])


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One anomaly model learnt from 24 drawn good parts (18 in the bank, 6 to calibrate)."""
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("anomaly")
    data = good_folder(root / "good", 24, seed=1)
    model_path = root / "out" / "tiles.onnx"
    report = train_anomaly(data, model_path, SETTINGS, AnomalySettings(coreset_ratio=0.1))
    return model_path, report


@pytest.fixture(scope="module")
def grader(trained):
    return Grader.load(trained[0], providers=["CPUExecutionProvider"], threads=1)


def test_flags_defective_parts_and_not_new_good_parts(grader):
    good = [grader.grade(image).defects["anomaly"] for image in parts(6, seed=7)]
    spots = [grader.grade(image).defects["anomaly"] for image in parts(4, seed=8, defect="spot")]
    scratches = [grader.grade(i).defects["anomaly"] for i in parts(4, seed=9, defect="scratch")]
    assert [g.grade for g in good] == [0] * 6
    assert all(g.grade >= 1 and g.area_pct > 0 for g in spots + scratches)


def test_onnx_scores_equal_the_torch_scores(trained):
    from vision.training.anomaly import PatchCore  # noqa: F401  (the torch model is rebuilt below)

    model_path, _ = trained
    images = rgb(parts(3, seed=11) + parts(3, seed=12, defect="spot"))
    torch_model = _torch_model(model_path)
    torch_maps, torch_scores = anomaly_maps(torch_model, images)
    session = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    onnx_maps, onnx_scores = session.run(
        [MAP_OUTPUT, SCORE_OUTPUT], {INPUT_NAME: images.transpose(0, 3, 1, 2) / np.float32(255)}
    )
    np.testing.assert_allclose(onnx_scores, torch_scores, atol=1e-4, rtol=0)
    # the map's values reach ~25 here; float32 carries about 7 digits of them
    np.testing.assert_allclose(onnx_maps[:, 0], torch_maps, atol=1e-4, rtol=1e-5)


def _torch_model(model_path):
    """The trained torch model again: the same data, settings and seed give the same bank."""
    from vision.folders import load_images
    from vision.training.anomaly import fit_patchcore
    from vision.training.backbone import Encoder, load_efficientnet_lite0
    from vision.training.fit_anomaly import calibration_split, good_images

    data = model_path.parent.parent / "good"
    paths = good_images(data, SIZE)
    bank, _ = calibration_split(len(paths), SETTINGS.val_split, SETTINGS.seed)
    images = load_images(paths, SIZE, data)[bank]
    encoder = Encoder(load_efficientnet_lite0(), (4, 10))
    return fit_patchcore(encoder, images, AnomalySettings(coreset_ratio=0.1))


def test_the_card_records_task_threshold_and_outputs(trained):
    model_path, report = trained
    card = read_card(model_path)
    assert card.task == "anomaly"
    assert card.classes == ["anomaly"]
    assert card.output_names == [MAP_OUTPUT, SCORE_OUTPUT]
    assert card.anomaly_threshold == pytest.approx(report["validation"]["threshold"])
    assert card.anomaly_threshold >= report["validation"]["good_score_max"]
    session = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    check_card(card, session)  # no mismatch
    metrics = json.loads(model_path.with_suffix(".metrics.json").read_text())
    assert metrics["data"] == {
        "root": metrics["data"]["root"],
        "images": 24,
        "train": 18,
        "validation": 6,
    }


def test_a_card_without_threshold_or_with_wrong_outputs_is_refused(trained, tmp_path):
    model_path, _ = trained
    session = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    card = read_card(model_path)
    with pytest.raises(CardMismatch, match="no anomaly_threshold"):
        check_card(card.model_copy(update={"anomaly_threshold": None}), session)
    with pytest.raises(
        CardMismatch, match=r"input size \(HxW\): card says \[32, 32\], graph has \[64, 64\]"
    ):
        check_card(card.model_copy(update={"input_size": (32, 32)}), session)
    with pytest.raises(CardMismatch, match=r"task anomaly has N x 1x32x32.*graph has \?x1x64x64"):
        check_card(card.model_copy(update={"input_size": (32, 32)}), session)
    with pytest.raises(CardMismatch, match="classes: task anomaly has"):
        check_card(card.model_copy(update={"classes": ["corrosion"]}), session)
    copy = tmp_path / "swapped.onnx"
    copy.write_bytes(model_path.read_bytes())
    write_card(copy, card.model_copy(update={"output_names": [SCORE_OUTPUT, MAP_OUTPUT]}))
    with pytest.raises(CardMismatch, match="output names: card says"):
        Grader.load(copy, providers=["CPUExecutionProvider"])


def test_the_overlay_marks_the_anomalous_area(grader):
    image = parts(1, seed=13, defect="spot")[0]
    view = grader.grade(image)
    drawn = draw_overlay(image, view)
    mask = cv2.resize(view.masks["anomaly"].astype(np.uint8), (SIZE, SIZE)) > 0
    assert mask.any() and (drawn[mask] != image[mask]).any()
    assert "anomaly" in OVERLAY_COLOURS


def test_the_overlay_draws_the_anomaly_map_as_heat(grader):
    from dataclasses import replace

    from vision.overlay import HEAT_FROM, HEAT_TO

    seen = {"hot": False, "cold": False}
    for image in (parts(1, seed=13, defect="spot")[0], parts(1, seed=14)[0]):
        view = grader.grade(image)
        assert view.heat is not None
        heat = cv2.resize(view.heat, (SIZE, SIZE))
        with_heat = draw_overlay(image, view).astype(int)
        without = draw_overlay(image, replace(view, heat=None)).astype(int)
        cold, hot = heat < HEAT_FROM, heat > (HEAT_FROM + HEAT_TO) / 2
        seen = {"hot": seen["hot"] or hot.any(), "cold": seen["cold"] or cold.any()}
        assert (with_heat[cold] == without[cold]).all()  # untouched below the heat's span
        if hot.any():  # red over blue where the map is well above the threshold
            red_blue = with_heat[..., 2] - with_heat[..., 0]
            assert red_blue[hot].mean() > (without[..., 2] - without[..., 0])[hot].mean() + 20
    assert seen == {"hot": True, "cold": True}


def test_greedy_coreset_picks_spread_out_points():
    points = torch.tensor([[0.0, 0.0], [0.1, 0.0], [10.0, 0.0], [0.0, 10.0], [10.1, 0.0]])
    chosen = set(greedy_coreset(points, 3, dims=8, seed=0).tolist())
    assert len(chosen) == 3
    assert len(chosen & {0, 1}) == 1 and len(chosen & {2, 4}) == 1 and 3 in chosen


def test_reman_train_task_anomaly_gives_a_model_the_grader_loads(tmp_path):
    data = good_folder(tmp_path / "good", 6, seed=3)
    model = tmp_path / "cli.onnx"
    args = ["--task", "anomaly", "--data", str(data), "--out", str(model), "--size", "64"]
    result = CliRunner().invoke(cli, ["train", *args, "--threads", "1"])
    assert result.exit_code == 0, result.output
    assert "threshold" in result.output
    grader = Grader.load(model, providers=["CPUExecutionProvider"])
    assert set(grader.grade(parts(1, seed=5)[0]).defects) == {"anomaly"}


def test_false_alarms_sets_the_threshold_at_that_share_of_held_out_good_parts(tmp_path):
    data = good_folder(tmp_path / "good", 20, seed=13)
    model = tmp_path / "budget.onnx"
    args = ["--task", "anomaly", "--data", str(data), "--out", str(model), "--size", "64"]
    result = CliRunner().invoke(
        cli, ["train", *args, "--val-split", "0.5", "--false-alarms", "0.2", "--threads", "1"]
    )
    assert result.exit_code == 0, result.output
    metrics = json.loads(model.with_suffix(".metrics.json").read_text())["validation"]
    scores = np.array(metrics["good_scores"])  # the 10 held-out good parts, sorted
    threshold = read_card(model).anomaly_threshold
    assert len(scores) == 10 and threshold == pytest.approx(np.quantile(scores, 0.8), rel=1e-6)
    flagged = int((scores > threshold).sum())
    assert flagged == 2 and f"flags {flagged} of them" in result.output
    assert "note:" not in result.output  # 10 images can show a 20 % rate
    default = CliRunner().invoke(cli, ["train", *args, "--out", str(tmp_path / "d.onnx")])
    assert default.exit_code == 0 and "flags 0 of them" in default.output
    assert (
        "note: the threshold is 1.1 x the highest held-out good score: it flags none of them "
        "and lets faint defects through; --false-alarms 0.02 or 0.05"
    ) in default.output
    assert read_card(tmp_path / "d.onnx").anomaly_threshold > threshold


def test_false_alarms_warns_when_too_few_good_parts_are_held_out(tmp_path):
    data = good_folder(tmp_path / "good", 8, seed=14)
    args = ["--task", "anomaly", "--data", str(data), "--out", str(tmp_path / "m.onnx")]
    result = CliRunner().invoke(
        cli, ["train", *args, "--size", "64", "--val-split", "0.25", "--false-alarms", "0.05"]
    )
    assert result.exit_code == 0, result.output
    assert (
        "note: 2 held-out good images cannot show a false-alarm rate of 5.0% (one of them is "
        "50.0%); hold out at least 20 (--val-split) for that threshold to mean it"
    ) in result.output


@pytest.mark.parametrize(
    "extra,message",
    [
        (["--task", "classify", "--false-alarms", "0.1"], "--false-alarms is for --task anomaly"),
        (["--task", "anomaly", "--false-alarms", "0.6"], "0<x<0.5"),
        (["--task", "anomaly", "--false-alarms", "0"], "0<x<0.5"),
        (
            ["--task", "anomaly", "--false-alarms", "0.1", "--val-split", "0"],
            "--false-alarms needs held-out good images: --val-split above 0",
        ),
    ],
)
def test_a_false_alarm_budget_that_cannot_be_used_is_refused(tmp_path, extra, message):
    data = good_folder(tmp_path / "good", 3, seed=15)
    args = ["--data", str(data), "--out", str(tmp_path / "m.onnx"), "--size", "64", *extra]
    result = CliRunner().invoke(cli, ["train", *args])
    assert result.exit_code != 0 and message in result.output, result.output
    assert not (tmp_path / "m.onnx").exists()


def test_a_size_that_is_not_a_multiple_of_32_is_refused(tmp_path):
    data = good_folder(tmp_path / "good", 3, seed=4)
    args = ["--task", "anomaly", "--data", str(data), "--out", str(tmp_path / "m.onnx")]
    result = CliRunner().invoke(cli, ["train", *args, "--size", "72"])
    assert result.exit_code != 0
    assert "multiple of 32" in result.output


def test_auroc_counts_ties_half_and_needs_both_classes():
    from vision.training.anomaly_eval import auroc

    assert auroc(np.array([0.1, 0.2, 0.8, 0.9]), np.array([0, 0, 1, 1])) == 1.0
    assert auroc(np.array([0.5, 0.5]), np.array([0, 1])) == 0.5
    assert auroc(np.array([0.9, 0.1, 0.4, 0.3]), np.array([0, 1, 1, 0])) == 0.25
    assert auroc(np.array([0.1, 0.2]), np.array([1, 1])) is None


def test_pro_weighs_every_defect_region_the_same():
    from vision.training.anomaly_eval import pro_auc

    masks = np.zeros((2, 60, 60), bool)
    masks[0, 5:45, 5:45] = True  # a large defect
    masks[1, 50:53, 50:53] = True  # and a small one
    found_both = masks + np.random.default_rng(0).random(masks.shape) * 0.5
    only_large = np.where(masks & (np.arange(2)[:, None, None] == 0), 1.0, 0.0)
    only_large += np.random.default_rng(1).random(masks.shape) * 0.5  # the small one is noise
    assert pro_auc(found_both, masks) == 1.0
    # pixel-wise the large region dominates; in PRO the missed small one is half the regions
    assert 0.5 < pro_auc(only_large, masks) < 0.7
    assert pro_auc(found_both, np.zeros_like(masks)) is None


def test_the_bench_measures_an_anomaly_model_on_a_masked_set(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    rng = np.random.default_rng(21)
    for name, count in (("free", 12), ("spot", 4)):
        (tmp_path / "set" / name).mkdir(parents=True)
        for i in range(count):
            image, mask = surface(rng, SIZE), np.zeros((SIZE, SIZE), np.uint8)
            if name == "spot":
                draw_defect(image, "spot", rng, mask)
            cv2.imwrite(str(tmp_path / "set" / name / f"{i}.jpg"), image)
            cv2.imwrite(str(tmp_path / "set" / name / f"{i}.png"), mask)
    script = Path(__file__).resolve().parents[2] / "bench" / "train_real.py"
    args = ["--task", "anomaly", "--size", "64", "--threads", "1", "--coreset", "0.1"]
    done = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "set"), *args, "--work", str(tmp_path / "w")],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["split"] == "seed 0: free 4 bank, 2 calibration, 6 evaluated with all 4 defective"
    assert result["image_auroc"] == 1.0 and result["pixel_auroc"] > 0.9
    assert 0.5 < result["pro_auc_0_3"] <= 1.0
    assert result["model_mb"] > 0 and result["run_p50_ms"] > 0
    points = result["operating_points"]  # what each --false-alarms budget would have done
    assert [p["false_alarms"] for p in points] == [0.01, 0.02, 0.05, 0.1]
    thresholds = [p["threshold"] for p in points]
    assert thresholds == sorted(thresholds, reverse=True) and thresholds[0] < result["threshold"]
    missed = [p["defective_missed_share"] for p in points]
    assert missed == sorted(missed, reverse=True) and missed[-1] <= result["defective_missed_share"]


def test_a_family_rule_sends_an_anomalous_core_to_review(grader):
    from edge.contract import Disposition
    from edge.decision.families import FamilyConfig
    from edge.decision.rules import decide
    from tests.decision.test_rules import FAMILIES, NOW, inputs

    spec = FAMILIES.get("hydraulic-gear-pump").model_dump()
    spec |= {"grades": {}, "credit": spec["credit"] | {"partial_if_grade_at": {}}}
    spec["rules"] = [
        {
            "id": "anomalous-core",
            "text": "The part differs from the good ones the anomaly model learnt",
            "outcome": "REVIEW",
            "when": [{"defect": "anomaly", "grade_at": 1}],
        }
    ]
    family = FamilyConfig.model_validate(spec)
    _, measurements = inputs("hydraulic-gear-pump")

    def disposition(image):
        defect = grader.grade(image).defects["anomaly"]
        record = defect.to_dict() | {"scale": defect.scale}
        return decide(family, {"anomaly": record}, measurements, now=NOW)

    flagged = disposition(parts(1, seed=8, defect="spot")[0])
    assert flagged.code == Disposition.REVIEW
    assert [r.code for r in flagged.reasons] == ["anomalous-core"], flagged.reasons
    assert disposition(parts(1, seed=7)[0]).code == Disposition.REUSE


def test_anomaly_training_shows_its_progress_and_takes_the_version(tmp_path, capsys):
    data = good_folder(tmp_path / "good", 8, seed=5)
    settings = TrainSettings(size=SIZE, val_split=0.25, seed=0, threads=1, version="7")
    train_anomaly(data, tmp_path / "m.onnx", settings, AnomalySettings(coreset_ratio=0.1))
    lines = capsys.readouterr().err.splitlines()
    assert any(line.startswith("features [") and " ETA " in line for line in lines)
    assert lines[-1].startswith("coreset [########################]")  # finished
    from vision.card import read_card

    assert read_card(tmp_path / "m.onnx").version == "7"


def test_standardize_brings_each_image_to_one_brightness_and_contrast():
    from vision.training.anomaly import STANDARD_MEAN, STANDARD_STD, standardize

    rng = np.random.default_rng(3)
    texture = rng.random((1, 3, 32, 32)).astype(np.float32) * 0.2
    dim, bright = torch.from_numpy(texture + 0.1), torch.from_numpy(texture * 1.5 + 0.5)
    a, b = standardize(dim), standardize(bright)
    assert torch.allclose(a, b, atol=1e-5)  # the same texture, lit differently: the same input
    assert abs(float(a.mean()) - STANDARD_MEAN) < 0.01
    assert abs(float(a.std(unbiased=False)) - STANDARD_STD) < 0.01
    flat = standardize(torch.full((1, 3, 8, 8), 0.3))
    assert torch.isfinite(flat).all() and torch.allclose(flat, torch.tensor(STANDARD_MEAN))
