"""`--device`: an accelerator by name, mapped to onnxruntime execution providers.

onnxruntime runs a model on the first provider in a list that can take it; liveheat always
ends the list with the CPU. A device whose provider this onnxruntime build lacks (the CPU
wheel has only the CPU) falls back to the CPU with one `liveheat:` line.
"""

from __future__ import annotations

import logging

log = logging.getLogger("liveheat.model")

#: each device's providers, best first (the CPU is added last to every list)
PROVIDERS = {
    "cpu": (),
    "cuda": ("CUDAExecutionProvider",),
    "tensorrt": ("TensorrtExecutionProvider", "CUDAExecutionProvider"),
    "openvino": ("OpenVINOExecutionProvider",),
    "coreml": ("CoreMLExecutionProvider",),
    "directml": ("DmlExecutionProvider",),
}
# what `auto` tries, in order: TensorRT is left out (it builds an engine for minutes at start)
AUTO_ORDER = ("cuda", "coreml", "directml", "openvino")
CPU = "CPUExecutionProvider"


def available() -> list[str]:
    """The execution providers this onnxruntime build offers."""
    import onnxruntime as ort

    return list(ort.get_available_providers())


def auto_device(have: list[str] | None = None) -> str:
    """The device `auto` picks here: the first of AUTO_ORDER whose provider is present, else
    the CPU.

    Examples:
        >>> auto_device(["CPUExecutionProvider"])
        'cpu'
        >>> auto_device(["CUDAExecutionProvider", "CPUExecutionProvider"])
        'cuda'
    """
    have = available() if have is None else have
    return next((d for d in AUTO_ORDER if PROVIDERS[d][0] in have), "cpu")


def providers_for(device: str, have: list[str] | None = None, *, say: bool = True) -> list[str]:
    """onnxruntime's provider list for `device` (one of PROVIDERS or "auto"), CPU last. A
    device whose providers are all missing falls back to the CPU, said in one line.

    Examples:
        >>> providers_for("cpu")
        ['CPUExecutionProvider']
        >>> providers_for("cuda", ["CPUExecutionProvider"], say=False)
        ['CPUExecutionProvider']
    """
    have = available() if have is None else have
    if device == "auto":
        device = auto_device(have)
    wanted = PROVIDERS[device]
    chosen = [p for p in wanted if p in have]
    if wanted and not chosen and say:
        log.warning(
            "liveheat: --device %s: this onnxruntime has no %s (it has %s); running on the CPU"
            " (pip install onnxruntime-gpu for CUDA, onnxruntime-openvino for OpenVINO)",
            device,
            wanted[0],
            ", ".join(have),
        )
    return [*chosen, CPU]
