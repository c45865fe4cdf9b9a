"""The TensorRT engine cache: which options a TensorRT session gets for a model file, and that
on a machine without a GPU (this one) the grader still opens on the CPU, quietly.

No GPU here, so TensorRT itself is not run: the options are checked as the pure function that
builds them, and the station config is checked to carry them to the grader.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
from pathlib import Path

import onnxruntime as ort
import pytest

from edge.config.station import ModelConfig, StationConfig
from tests.vision.toy_models import colour_segmenter, segmentation_card
from vision._onnx import TENSORRT, TensorrtCache, session_providers, tensorrt_options
from vision.grader import Grader


def segmenter(path: Path, **card) -> Path:
    """The toy segmentation model at `path` (its folder made), with card changes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    return colour_segmenter(path, segmentation_card(**card))


@pytest.fixture
def model(tmp_path) -> Path:
    return segmenter(tmp_path / "a" / "seg.onnx")


def test_a_tensorrt_session_caches_its_engine_and_timings_under_the_state_folder(model, tmp_path):
    cache = tmp_path / "state" / "tensorrt"
    options = tensorrt_options(model, TensorrtCache(cache, fp16=True))
    sha256 = hashlib.sha256(model.read_bytes()).hexdigest()
    assert options == {
        "trt_engine_cache_enable": "True",
        "trt_engine_cache_path": str(cache / sha256 / f"fp16-ort{ort.__version__}"),
        "trt_timing_cache_enable": "True",
        "trt_timing_cache_path": str(cache),
        "trt_fp16_enable": "True",
    }
    assert tensorrt_options(model, TensorrtCache(cache))["trt_fp16_enable"] == "False"


def test_a_new_model_never_reuses_an_old_engine(model, tmp_path):
    cache = TensorrtCache(tmp_path / "tensorrt")
    # The same graph and file name with other bytes, as a retrained model copied over the old.
    retrained = segmenter(tmp_path / "b" / "seg.onnx", version="2")
    copied = tmp_path / "c" / "seg.onnx"
    copied.parent.mkdir()
    shutil.copyfile(model, copied)

    def engines(path: Path, settings: TensorrtCache = cache) -> str:
        return tensorrt_options(path, settings)["trt_engine_cache_path"]

    assert engines(model) != engines(retrained)
    assert engines(model) == engines(model) == engines(copied)  # keyed by bytes, not by path
    assert engines(model) != engines(model, TensorrtCache(cache.folder, fp16=True))


def test_only_tensorrt_gets_the_cache_options(model, tmp_path):
    providers = [TENSORRT, "CUDAExecutionProvider", "CPUExecutionProvider"]
    cache = TensorrtCache(tmp_path / "tensorrt")
    chosen = session_providers(model, providers, cache)
    assert chosen == [
        (TENSORRT, tensorrt_options(model, cache)),
        "CUDAExecutionProvider",
        "CPUExecutionProvider",
    ]
    assert session_providers(model, providers, None) == providers


def test_on_a_cpu_machine_the_grader_opens_on_the_cpu_and_logs_no_error(
    model, tmp_path, caplog, capfd
):
    cache = tmp_path / "tensorrt"
    with caplog.at_level(logging.INFO):
        grader = Grader.load(model, tensorrt_cache_dir=cache, tensorrt_fp16=True)
    assert TENSORRT not in ort.get_available_providers()  # this machine has no GPU
    assert grader.providers == ["CPUExecutionProvider"]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert "[E:onnxruntime" not in capfd.readouterr().err
    assert not cache.exists()  # no TensorRT session, no cache folder


def test_the_station_config_names_the_cache_and_fp16(tmp_path):
    assert ModelConfig().tensorrt_cache_dir == "/var/lib/reman/tensorrt"
    assert ModelConfig().tensorrt_fp16 is False
    config = StationConfig(
        station_id="st-1",
        camera={"source": "usb"},
        model={"tensorrt_cache_dir": "trt", "tensorrt_fp16": True},
    ).resolve_paths(tmp_path)
    assert config.model.tensorrt_cache_dir == str(tmp_path / "trt")
    assert config.model.tensorrt_fp16 is True
