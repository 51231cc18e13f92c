"""Shared test fixtures: real images (scikit-image), the bundled models, small ONNX models.

The small models are built with onnx.helper so tests can check values against numpy.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
CLIP = ROOT / "liveheat" / "data" / "bigbuckbunny.mp4"


def skimage_bgr(name: str) -> np.ndarray:
    """A scikit-image sample image (CC0, offline) as a uint8 BGR frame."""
    import skimage.data

    rgb = getattr(skimage.data, name)()
    rgb = np.asarray(rgb[0] if isinstance(rgb, tuple) else rgb)  # stereo pairs: the left
    if rgb.ndim == 2:
        return cv2.cvtColor(rgb, cv2.COLOR_GRAY2BGR)
    return np.ascontiguousarray(cv2.cvtColor(rgb[..., :3], cv2.COLOR_RGB2BGR))


def clip_frames(n: int, start: int = 0) -> list[np.ndarray]:
    """`n` consecutive frames of the bundled Big Buck Bunny clip from `start`."""
    cap = cv2.VideoCapture(str(CLIP))
    frames = []
    try:
        for i in range(start + n):
            ok, frame = cap.read()
            if not ok:
                break
            if i >= start:
                frames.append(frame)
    finally:
        cap.release()
    assert len(frames) == n, f"clip gave {len(frames)} frames, expected {n}"
    return frames


@pytest.fixture(scope="session")
def chelsea() -> np.ndarray:
    return skimage_bgr("chelsea")


@pytest.fixture(scope="session")
def coffee() -> np.ndarray:
    return skimage_bgr("coffee")


@pytest.fixture(scope="session")
def bb_fp32():
    from liveheat.model.backbone import Backbone

    return Backbone(threads=2)


@pytest.fixture(scope="session")
def bb_int8():
    from liveheat.model.backbone import Backbone

    return Backbone("int8", threads=2)


# ---------------------------------------------------------------- small ONNX models
def portable_model(graph):
    """A ModelProto with opset 18 and IR version 8: loadable by any onnxruntime since 1.14.

    helper.make_model alone stamps the newest IR version the installed onnx knows, which an
    older onnxruntime refuses ("Unsupported model IR version"): seen with onnx 1.23 and
    onnxruntime 1.30.
    """
    from onnx import helper

    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    return model


def tiny_cnn(
    path: Path,
    *,
    head: str = "gemm",
    classes: int = 5,
    seed: int = 0,
    metadata: dict[str, str] | None = None,
) -> dict:
    """Write conv1x1(3->8) -> relu -> conv3x3/2(8->16) -> relu -> [head] to `path`.

    head: "gemm" (GlobalAveragePool -> Flatten -> Gemm transB=1), "matmul" (ReduceMean ->
    Flatten -> MatMul -> Add), or "none" (the 4-D relu2 is the only output). Input `image`
    (N, 3, H, W) with dynamic batch/height/width. Returns the weights (numpy) by name.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    w = {
        "conv1.w": rng.normal(0, 0.5, (8, 3, 1, 1)).astype(np.float32),
        "conv1.b": rng.normal(0, 0.1, 8).astype(np.float32),
        "conv2.w": rng.normal(0, 0.3, (16, 8, 3, 3)).astype(np.float32),
        "conv2.b": rng.normal(0, 0.1, 16).astype(np.float32),
        "fc.w": rng.normal(0, 1.0, (classes, 16)).astype(np.float32),
        "fc.b": rng.normal(0, 0.1, classes).astype(np.float32),
    }
    nodes = [
        helper.make_node("Conv", ["image", "conv1.w", "conv1.b"], ["conv1"]),
        helper.make_node("Relu", ["conv1"], ["relu1"]),
        helper.make_node(
            "Conv", ["relu1", "conv2.w", "conv2.b"], ["conv2"], strides=[2, 2], pads=[1, 1, 1, 1]
        ),
        helper.make_node("Relu", ["conv2"], ["relu2"]),
    ]
    inits = {k: w[k] for k in ("conv1.w", "conv1.b", "conv2.w", "conv2.b")}
    dims = ["batch", 3, "height", "width"]
    outputs = []
    if head == "gemm":
        nodes += [
            helper.make_node("GlobalAveragePool", ["relu2"], ["pooled"]),
            helper.make_node("Flatten", ["pooled"], ["flat"]),
            helper.make_node("Gemm", ["flat", "fc.w", "fc.b"], ["scores"], transB=1),
        ]
        inits.update({"fc.w": w["fc.w"], "fc.b": w["fc.b"]})
    elif head == "matmul":
        inits["axes"] = np.array([2, 3], np.int64)
        nodes += [
            helper.make_node("ReduceMean", ["relu2", "axes"], ["pooled"], keepdims=1),
            helper.make_node("Flatten", ["pooled"], ["flat"]),
            helper.make_node("MatMul", ["flat", "fc.wT"], ["mm"]),
            helper.make_node("Add", ["mm", "fc.b"], ["scores"]),
        ]
        inits.update({"fc.wT": np.ascontiguousarray(w["fc.w"].T), "fc.b": w["fc.b"]})
    if head != "none":
        outputs.append(
            helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["batch", classes])
        )
    else:
        dims2 = ["batch", 16, "h2", "w2"]
        outputs.append(helper.make_tensor_value_info("relu2", TensorProto.FLOAT, dims2))
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, dims)],
        outputs,
        [numpy_helper.from_array(v, k) for k, v in inits.items()],
    )
    model = portable_model(graph)
    for k, v in (metadata or {}).items():
        model.metadata_props.add(key=k, value=v)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return w


@pytest.fixture
def tiny_model(tmp_path) -> tuple[Path, dict]:
    """A small conv -> relu -> conv -> relu -> GAP -> Gemm ONNX model and its weights."""
    path = tmp_path / "tiny.onnx"
    return path, tiny_cnn(path)


@pytest.fixture(scope="session")
def ray_session():
    """One real local Ray for the whole test session (it takes ~10 s to start here); the
    [ray] extra is in the test extra, so this never skips in CI."""
    import logging

    import ray

    if not ray.is_initialized():
        ray.init(
            num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR
        )
    yield ray
    ray.shutdown()
