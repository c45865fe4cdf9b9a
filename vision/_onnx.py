"""onnxruntime at the package boundary: sessions opened with our options, its errors wrapped."""

from __future__ import annotations

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

PREFERRED_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")
PROVIDER_ALIASES = {
    "tensorrt": "TensorrtExecutionProvider",
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


def open_session(path: Path, providers: list[str], threads: int = 1) -> ort.InferenceSession:
    """An InferenceSession for the model file; threads 0 means onnxruntime's default (all cores)."""
    if not path.is_file():
        raise ModelError(f"{path}: model file not found")
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3
    # Worker threads that spin while idle steal the cores the node's loop and camera need.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        return ort.InferenceSession(str(path), sess_options=options, providers=providers)
    except ORT_ERRORS as exc:
        raise ModelError(f"{path}: cannot load the model: {exc}") from exc


def model_metadata(session: ort.InferenceSession) -> dict[str, str]:
    """The model's custom metadata (string key to string value)."""
    return dict(session.get_modelmeta().custom_metadata_map)
