"""onnxruntime at the package boundary: sessions opened with our options, its errors wrapped.

TensorRT builds an engine for a model when a session opens (minutes on a Jetson). Its engine
cache keeps that engine for the next start, in a folder of its own for each model file's
sha256, precision and onnxruntime version: onnxruntime names a cached engine by the model's
file name and graph, not its weights, so a retrained model copied over the old one would
otherwise load the old engine. The timing cache (layer timings, not weights) is shared.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import onnxruntime as ort
from onnxruntime.capi import onnxruntime_pybind11_state as _state

from vision.errors import ModelError

# onnxruntime raises its own exception classes (all direct Exception subclasses).
ORT_ERRORS: tuple[type[Exception], ...] = tuple(
    value
    for value in vars(_state).values()
    if isinstance(value, type) and issubclass(value, Exception)
)

TENSORRT = "TensorrtExecutionProvider"
PREFERRED_PROVIDERS = (TENSORRT, "CUDAExecutionProvider", "CPUExecutionProvider")
PROVIDER_ALIASES = {
    "tensorrt": TENSORRT,
    "cuda": "CUDAExecutionProvider",
    "cpu": "CPUExecutionProvider",
}


def pick_providers(providers: str | list[str] = "auto") -> list[str]:
    """The execution providers to use: "auto" picks TensorRT, CUDA, CPU as available.

    An explicit list (full names or the aliases tensorrt, cuda, cpu) must name only available
    providers; ModelError says which are not.
    """
    available = ort.get_available_providers()
    if providers == "auto":
        return [name for name in PREFERRED_PROVIDERS if name in available]
    if isinstance(providers, str):
        providers = [providers]
    providers = [PROVIDER_ALIASES.get(name.lower(), name) for name in providers]
    missing = [name for name in providers if name not in available]
    if missing:
        raise ModelError(
            f"execution provider(s) {missing} not available here; available: {available}"
        )
    return list(providers)


@dataclass(frozen=True)
class TensorrtCache:
    """Where TensorRT keeps the engines it builds, and whether it may build FP16 kernels."""

    folder: Path
    fp16: bool = False


def tensorrt_options(model_path: Path, cache: TensorrtCache) -> dict[str, str]:
    """The provider options a TensorRT session gets for this model file: the engine cache on,
    in cache.folder/<sha256>/<fp16|fp32>-ort<version>; the timing cache on, in cache.folder;
    FP16 as cache.fp16 says."""
    precision = "fp16" if cache.fp16 else "fp32"
    engines = cache.folder / file_sha256(model_path) / f"{precision}-ort{ort.__version__}"
    return {
        "trt_engine_cache_enable": "True",
        "trt_engine_cache_path": str(engines),
        "trt_timing_cache_enable": "True",
        "trt_timing_cache_path": str(cache.folder),
        "trt_fp16_enable": "True" if cache.fp16 else "False",
    }


def session_providers(
    model_path: Path, providers: list[str], tensorrt: TensorrtCache | None
) -> list[str | tuple[str, dict[str, str]]]:
    """providers as InferenceSession takes them: TensorRT with tensorrt_options (when a cache
    is given), every other provider by name."""
    return [
        (name, tensorrt_options(model_path, tensorrt)) if name == TENSORRT and tensorrt else name
        for name in providers
    ]


def open_session(
    path: Path, providers: list[str], threads: int = 1, tensorrt: TensorrtCache | None = None
) -> ort.InferenceSession:
    """An InferenceSession for the model file; threads 0 means onnxruntime's default (all cores).

    With `tensorrt`, a TensorRT provider caches its engine there (tensorrt_options).
    """
    if not path.is_file():
        raise ModelError(f"{path}: model file not found")
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3
    # Worker threads that spin while idle steal the cores the node's loop and camera need.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    chosen = session_providers(path, providers, tensorrt)
    _make_cache_folders(chosen)
    try:
        return ort.InferenceSession(str(path), sess_options=options, providers=chosen)
    except ORT_ERRORS as exc:
        raise ModelError(f"{path}: cannot load the model: {exc}") from exc


def _make_cache_folders(providers: list[str | tuple[str, dict[str, str]]]) -> None:
    # onnxruntime creates the last folder of a cache path only, not its parents.
    for provider in providers:
        if isinstance(provider, tuple) and provider[0] == TENSORRT:
            engines = provider[1]["trt_engine_cache_path"]
            try:
                Path(engines).mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise ModelError(f"cannot make the TensorRT engine cache {engines}: {exc}") from exc


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def model_metadata(session: ort.InferenceSession) -> dict[str, str]:
    """The model's custom metadata (string key to string value)."""
    return dict(session.get_modelmeta().custom_metadata_map)
