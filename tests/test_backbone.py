"""Backbone: the bundled EfficientNet-Lite0 (fp32 and int8) and small ONNX models built here.

Real model, real images (scikit-image), real onnxruntime; values checked, not just shapes.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import warnings

import cv2
import numpy as np
import onnx
import pytest
from conftest import portable_model, skimage_bgr, tiny_cnn
from onnx import TensorProto, helper, numpy_helper

from liveheat.errors import LiveheatError
from liveheat.model.backbone import Backbone, layers_table
from liveheat.model.bundled import models_dir
from liveheat.model.features import Features, LayerInfo
from liveheat.model.heatmaps import heatmap
from scripts.bench_model import random_crop  # the same augmentation as the benchmark

CATS = range(281, 286)  # tabby, tiger cat, Persian, Siamese, Egyptian cat
ESPRESSO = 967
NATURAL = ["astronaut", "chelsea", "coffee", "rocket", "stereo_motorcycle", "camera", "clock"]


# ---------------------------------------------------------------- classification
@pytest.mark.parametrize("variant", ["bb_fp32", "bb_int8"])
def test_chelsea_is_a_cat_and_coffee_is_espresso(variant, chelsea, coffee, request):
    bb = request.getfixturevalue(variant)
    cat, cup = bb(chelsea), bb(coffee)
    assert cat.top(1)[0][0] in CATS
    assert "cat" in cat.top(1)[0][1]
    idx, name, prob = cup.top(1)[0]
    assert (idx, name) == (ESPRESSO, "espresso")
    assert prob > 0.85
    assert abs(float(cup.probs().sum()) - 1.0) < 1e-5
    assert [t[0] for t in cup.top(5)] == list(np.argsort(-cup.logits)[:5])


def test_features_describe_the_map(bb_fp32, chelsea):
    feats = bb_fp32(chelsea)
    assert isinstance(feats, Features)
    assert feats.maps.shape == (1280, 7, 7) and feats.maps.dtype == np.float32
    assert feats.logits.shape == (1000,) and feats.logits.dtype == np.float32
    assert len(feats.labels) == 1000 and feats.labels[ESPRESSO] == "espresso"
    assert feats.layer == "features" == bb_fp32.layer
    assert feats.frame_shape == chelsea.shape[:2]
    assert feats.valid == (0.0, 7.0, 0.0, 7.0)
    assert feats.cam_weights.shape == (1000, 1280)
    assert feats.cam_weights is bb_fp32(chelsea).cam_weights  # shared by every call: read-only
    with pytest.raises(ValueError, match="read-only"):
        feats.cam_weights[0, 0] = 1.0
    # features come after ReLU6: values in [0, 6]
    assert feats.maps.min() >= 0 and feats.maps.max() <= 6.0 + 1e-5
    # CAM weights are the classifier: pooled features @ W.T + b reproduces the logits
    fc = {t.name: numpy_helper.to_array(t) for t in onnx.load(bb_fp32.model_path).graph.initializer}
    np.testing.assert_allclose(feats.cam_weights, fc["fc.weight"])
    logits = feats.cam_weights @ feats.maps.mean(axis=(1, 2)) + fc["fc.bias"]
    np.testing.assert_allclose(logits, feats.logits, rtol=1e-4, atol=1e-3)


def test_int8_cam_weights_are_the_dequantised_classifier(bb_fp32, bb_int8, chelsea):
    w32 = bb_fp32(chelsea).cam_weights
    w8 = bb_int8(chelsea).cam_weights
    assert w8.shape == w32.shape == (1000, 1280)
    assert not np.array_equal(w8, w32)  # really the int8 copy ...
    step = np.abs(w32).max(axis=1, keepdims=True) / 127  # ... within half a quantisation step
    assert np.all(np.abs(w8 - w32) <= step * 0.5 + 1e-6)
    assert len(np.unique(w8[0])) <= 255


def test_grey_bgra_and_16_bit_frames_are_accepted(bb_fp32, chelsea):
    bgr = bb_fp32(chelsea)
    bgra = bb_fp32(cv2.cvtColor(chelsea, cv2.COLOR_BGR2BGRA))
    np.testing.assert_array_equal(bgra.logits, bgr.logits)
    wide = bb_fp32(chelsea.astype(np.uint16) * 257)
    assert wide.top(1)[0][0] == bgr.top(1)[0][0]  # resized before the 16 -> 8 bit rounding
    np.testing.assert_allclose(wide.logits, bgr.logits, atol=0.1)
    grey = bb_fp32(cv2.cvtColor(chelsea, cv2.COLOR_BGR2GRAY))
    assert grey.maps.shape == bgr.maps.shape
    assert not np.allclose(grey.logits, bgr.logits)


@pytest.mark.parametrize(
    "frame",
    [None, np.zeros((0, 5, 3), np.uint8), np.zeros((8, 8, 5), np.uint8), np.zeros((2, 8, 8, 3))],
    ids=["none", "empty", "5-channel", "4-d"],
)
def test_bad_frames_raise_liveheat_error(bb_fp32, frame):
    with pytest.raises(LiveheatError, match="frame"):
        bb_fp32(frame)


# ---------------------------------------------------------------- geometry
@pytest.mark.parametrize("quadrant", [0, 1, 2, 3])
@pytest.mark.parametrize("name", ["chelsea", "coffee"])
def test_cam_peak_falls_in_the_quadrant_holding_the_object(name, quadrant):
    # the object (cat face / cup) pasted into one quadrant of a plain grey 448x448 frame
    crop = {"chelsea": np.s_[20:260, 60:340], "coffee": np.s_[30:330, 120:480]}[name]
    obj = skimage_bgr(name)[crop]
    obj = cv2.resize(obj, (200, round(200 * obj.shape[0] / obj.shape[1])))
    frame = np.full((448, 448, 3), 127, np.uint8)
    oy = 12 if quadrant < 2 else 448 - 12 - obj.shape[0]
    ox = 12 if quadrant % 2 == 0 else 448 - 12 - obj.shape[1]
    frame[oy : oy + obj.shape[0], ox : ox + obj.shape[1]] = obj
    bb = _bb448()
    feats = bb(frame)
    assert feats.top(1)[0][0] in (CATS if name == "chelsea" else [ESPRESSO])
    heat = heatmap(feats, "cam")
    assert heat.shape == (14, 14)
    y, x = np.unravel_index(np.argmax(heat), heat.shape)
    assert (y >= 7) * 2 + (x >= 7) == quadrant
    q = heat[7 * (quadrant // 2) :, 7 * (quadrant % 2) :][:7, :7]
    assert q.sum() > 0.6 * heat.sum()  # most of the evidence sits on the object


_BB448: list[Backbone] = []


def _bb448() -> Backbone:
    if not _BB448:
        _BB448.append(Backbone(input_size=448, threads=2))
    return _BB448[0]


def test_input_size_rounds_to_32_and_sets_the_map_size(chelsea):
    bb = Backbone(input_size=300, threads=1)
    assert bb.input_size == (288, 288)
    assert bb(chelsea).maps.shape == (1280, 9, 9)
    bb.input_size = (224, 320)
    assert bb.input_size == (224, 320)
    blob, geo = bb.preprocess(chelsea)
    assert blob.shape == (1, 3, 224, 320) and blob.dtype == np.float32
    assert geo.frame_shape == (300, 451) and geo.pad == (0, 0, 0, 0)
    assert bb(chelsea).maps.shape == (1280, 7, 10)


def test_preprocessing_matches_the_model_card(bb_fp32, coffee):
    # RGB, stretch with INTER_LINEAR, (x - 127) / 128 (models/README.md)
    blob, _ = bb_fp32.preprocess(coffee)
    rgb = cv2.resize(coffee, (224, 224), interpolation=cv2.INTER_LINEAR)[:, :, ::-1]
    want = ((rgb.astype(np.float32) - 127) / 128).transpose(2, 0, 1)[None]
    np.testing.assert_allclose(blob, want, atol=1e-6)


def test_hd_frames_resize_bilinear_or_antialiased(bb_fp32):
    from conftest import clip_frames

    frame = clip_frames(1, start=60)[0]  # 1280x720
    blob, _ = bb_fp32.preprocess(frame)
    rgb = cv2.resize(frame, (224, 224), interpolation=cv2.INTER_LINEAR)[:, :, ::-1]
    np.testing.assert_allclose(blob[0], (rgb.transpose(2, 0, 1) - 127.0) / 128, atol=1e-6)
    smooth = Backbone(antialias=True, threads=1).preprocess(frame)[0]
    area = cv2.resize(frame, (224, 224), interpolation=cv2.INTER_AREA)[:, :, ::-1]
    area = (area.transpose(2, 0, 1) - 127.0) / 128
    # averaging before the bilinear step: much closer to a true area resample
    assert np.abs(smooth[0] - area).mean() < 0.4 * np.abs(blob[0] - area).mean()


def test_letterbox_pads_with_the_mean_and_valid_excludes_the_padding(chelsea):
    frame = np.full((300, 900, 3), 60, np.uint8)  # 3:1, cat on the left half
    frame[:, :451] = chelsea
    bb = Backbone(resize="letterbox", input_size=288, threads=1)
    blob, geo = bb.preprocess(frame)
    assert geo.input_shape == (288, 288)
    t, b, left, r = geo.pad
    assert (left, r) == (0, 0) and t + b == 288 - 96 and abs(t - b) <= 1
    assert np.abs(blob[0, :, :t]).max() < 1 / 128 + 1e-6  # padding is the mean, i.e. ~0
    assert np.abs(blob[0, :, t + 2 : 288 - b - 2]).max() > 0.2
    feats = bb(frame)
    assert feats.maps.shape == (1280, 9, 9)
    y0, y1, x0, x1 = feats.valid
    assert (x0, x1) == (0.0, 9.0)
    assert y0 == pytest.approx(t / 32) and y1 == pytest.approx((288 - b) / 32)
    heat = heatmap(feats, "cam")
    assert heat.shape[1] / heat.shape[0] == pytest.approx(3.0, rel=0.1)  # the frame's aspect
    cols = heat.sum(axis=0)
    assert np.argmax(cols) < heat.shape[1] / 2  # the cat's half ...
    assert cols[round(heat.shape[1] * 0.6) :].sum() < 0.05 * cols.sum()  # ... not the flat grey


# ---------------------------------------------------------------- fp32 vs int8
def test_int8_agrees_with_fp32_on_augmented_crops(bb_fp32, bb_int8):
    rng = np.random.default_rng(7)
    agree, corr, confident_miss = [], [], []
    for name in NATURAL:
        img = skimage_bgr(name)
        for _ in range(4):
            crop = random_crop(img, rng)
            a, b = bb_fp32(crop), bb_int8(crop)
            t, p = a.top(1)[0][0], a.top(1)[0][2]
            same = t == b.top(1)[0][0]
            agree.append(same)
            if not same and p > 0.5:
                confident_miss.append((name, p))
            ca, cb = heatmap(a, "cam", t), heatmap(b, "cam", t)
            corr.append(np.corrcoef(ca.ravel(), cb.ravel())[0, 1])
    assert len(agree) == 28
    assert np.mean(agree) >= 0.85, f"top-1 agreement {np.mean(agree):.0%}"
    assert not confident_miss  # int8 only disagrees where fp32 itself is unsure
    assert np.median(corr) >= 0.98 and min(corr) > 0.9


# ---------------------------------------------------------------- layers of the bundled model
def test_bundled_layers_list_feature_maps_only(bb_fp32):
    layers = bb_fp32.layers()
    assert all(isinstance(x, LayerInfo) and len(x.shape) == 4 for x in layers)
    by_name = {x.name: x for x in layers}
    assert by_name["features"] == LayerInfo(
        "features", "Clip", ("batch", 1280, "height_32", "width_32")
    )
    assert by_name["blocks.10"].shape[:2] == ("batch", 112)
    for i in range(16):
        assert f"blocks.{i}" in by_name
    assert not any(x.name.endswith(".weight") or x.name.endswith(".bias") for x in layers)
    assert "pooled" not in by_name and "logits" not in by_name  # 1x1 and 2-D: not maps
    assert [x.name for x in layers].index("stem") < [x.name for x in layers].index("features")
    table = layers_table(bb_fp32).splitlines()
    assert table[0].split() == ["name", "op", "shape", "note"]
    assert len(table) == len(layers) + 2
    assert any(line.startswith("features ") and "default, cam" in line for line in table)


@pytest.mark.parametrize("variant", [None, "int8"])
def test_stride16_layer_is_exposed(variant, chelsea):
    bb = Backbone(variant, layer="blocks.10", input_size=(256, 352), threads=2)
    feats = bb(chelsea)
    assert feats.maps.shape == (112, 16, 22)
    assert feats.layer == "blocks.10" and feats.cam_weights is None
    assert feats.top(1)[0][0] in CATS  # the logits still come along
    assert Backbone(variant, layer="stride16", threads=1).layer == "blocks.10"  # metadata alias


def test_int8_features_layer_keeps_cam(bb_int8, chelsea):
    feats = bb_int8(chelsea)
    assert feats.layer == "features" and feats.cam_weights is not None
    assert bb_int8.head_layer in {x.name for x in bb_int8.layers()}


# ---------------------------------------------------------------- a second, different model
def test_small_model_layers_and_exposed_values(tiny_model, chelsea):
    path, w = tiny_model
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    bb = Backbone(path, threads=1)
    names = [(x.name, x.op_type) for x in bb.layers()]
    assert names == [("conv1", "Conv"), ("relu1", "Relu"), ("conv2", "Conv"), ("relu2", "Relu")]
    assert [x.shape[:2] for x in bb.layers()] == [("batch", c) for c in (8, 8, 16, 16)]
    assert bb.layer == "relu2" and bb.head_layer == "relu2"  # the tensor the head pools
    assert bb.input_size == (224, 224)  # no metadata: ImageNet conventions
    assert bb.labels is None

    layer = Backbone(
        path, layer="relu1", threads=1, mean=0, std=1, scale=1 / 255, channel_order="BGR"
    )
    feats = layer(chelsea)
    assert feats.maps.shape == (8, 224, 224) and feats.cam_weights is None
    blob, _ = layer.preprocess(chelsea)
    # relu1 = relu(1x1 conv): check the exposed tensor against numpy
    want = np.einsum("oc,chw->ohw", w["conv1.w"][:, :, 0, 0], blob[0]) + w["conv1.b"][:, None, None]
    np.testing.assert_allclose(feats.maps, np.maximum(want, 0), rtol=1e-4, atol=1e-5)
    bgr = cv2.resize(chelsea, (224, 224), interpolation=cv2.INTER_LINEAR).astype(np.float32)
    np.testing.assert_allclose(blob[0], bgr.transpose(2, 0, 1) / 255, atol=1e-6)
    assert feats.top(1)[0][1] == str(feats.top(1)[0][0])  # no names: index as text
    # nothing written beside the user's file
    assert sorted(p.name for p in path.parent.iterdir()) == ["tiny.onnx"]
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before


@pytest.mark.parametrize("head", ["gemm", "matmul"])
def test_small_model_cam_weights_found_through_either_head(tmp_path, head, chelsea):
    path = tmp_path / f"{head}.onnx"
    w = tiny_cnn(path, head=head, classes=4)
    bb = Backbone(path, threads=1)
    feats = bb(chelsea)
    np.testing.assert_allclose(feats.cam_weights, w["fc.w"])
    assert feats.logits.shape == (4,)
    np.testing.assert_allclose(
        feats.cam_weights @ feats.maps.mean(axis=(1, 2)) + w["fc.b"],
        feats.logits,
        rtol=1e-4,
        atol=1e-4,
    )
    t = int(np.argmax(feats.logits))
    want = np.maximum(np.einsum("c,chw->hw", w["fc.w"][t], feats.maps), 0)
    np.testing.assert_allclose(heatmap(feats, "cam"), want, rtol=1e-5, atol=1e-6)


FULL_METADATA = {
    "liveheat.input_size": "64,64",
    "liveheat.mean": "0,0,0",
    "liveheat.std": "255,255,255",
    "liveheat.channel_order": "BGR",
}


def test_complete_metadata_sets_the_preprocessing(tmp_path, chelsea):
    path = tmp_path / "described.onnx"
    labels = ["ant", "bee", "cat", "dog", "eel"]
    tiny_cnn(path, metadata={**FULL_METADATA, "liveheat.labels": json.dumps(labels)})
    bb = Backbone(path, threads=1)
    assert (bb.input_size, bb.mean, bb.std, bb.scale) == ((64, 64), (0,) * 3, (255,) * 3, 1)
    blob, _ = bb.preprocess(cv2.resize(chelsea, (64, 64)))
    np.testing.assert_allclose(blob[0], cv2.resize(chelsea, (64, 64)).transpose(2, 0, 1) / 255)
    assert bb(chelsea).top(1)[0][1] in labels


@pytest.mark.parametrize("key", ["input_size", "mean", "std", "channel_order"])
def test_metadata_missing_one_preprocessing_key_is_named(tmp_path, key):
    path = tmp_path / "cut.onnx"
    tiny_cnn(path, metadata={k: v for k, v in FULL_METADATA.items() if k != f"liveheat.{key}"})
    with pytest.raises(LiveheatError, match=rf"cut.onnx: metadata has .* but no liveheat.{key};"):
        Backbone(path)
    Backbone(path, **{key: FULL_METADATA[f"liveheat.{key}"]})  # the caller may fill the gap


def test_metadata_with_a_cut_value_is_an_error(tmp_path):
    path = tmp_path / "cut.onnx"
    tiny_cnn(path, metadata={**FULL_METADATA, "liveheat.std": "255,255"})
    with pytest.raises(LiveheatError, match="bad std '255,255'; expected 1 or 3 numbers"):
        Backbone(path)


@pytest.mark.parametrize(
    "labels, message",
    [
        (
            json.dumps(["ant", "bee", "cat", "dog"]),
            "liveheat.labels lists 4 classes; expected .* 5",
        ),
        (json.dumps(["ant", "bee", "cat", "dog", "eel"])[:-9], "liveheat.labels cannot be read"),
    ],
    ids=["too-few", "cut-short"],
)
def test_labels_must_match_the_logits(tmp_path, labels, message):
    path = tmp_path / "labelled.onnx"
    tiny_cnn(path, classes=5, metadata={**FULL_METADATA, "liveheat.labels": labels})
    with pytest.raises(LiveheatError, match=message):
        Backbone(path)


def test_model_without_head_has_no_logits_and_no_cam(tmp_path, chelsea):
    path = tmp_path / "nohead.onnx"
    tiny_cnn(path, head="none", metadata={**FULL_METADATA, "liveheat.input_size": "96,128"})
    bb = Backbone(path, threads=1)
    assert bb.input_size == (96, 128)
    feats = bb(chelsea)
    assert feats.logits is None and feats.cam_weights is None and feats.top() == []
    assert feats.maps.shape == (16, 48, 64)
    with pytest.raises(LiveheatError, match="eigen"):
        heatmap(feats, "cam")
    assert heatmap(feats, "eigen").shape == (48, 64)


def test_grey_and_channels_last_models(tmp_path, chelsea):
    rng = np.random.default_rng(1)
    w = rng.normal(size=(4, 1, 1, 1)).astype(np.float32)
    grey = helper.make_graph(
        [
            helper.make_node("Conv", ["image", "w"], ["conv"]),
            helper.make_node("Relu", ["conv"], ["relu"]),
        ],
        "grey",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["n", 1, "h", "w"])],
        [helper.make_tensor_value_info("relu", TensorProto.FLOAT, ["n", 4, "h", "w"])],
        [numpy_helper.from_array(w, "w")],
    )
    path = tmp_path / "grey.onnx"
    onnx.save(portable_model(grey), str(path))
    bb = Backbone(path, input_size=(64, 96), mean=0, std=1, scale=1 / 255, threads=1)
    small = cv2.resize(chelsea, (96, 64))  # already the input size: no resampling
    blob, _ = bb.preprocess(small)
    want = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY) / 255
    np.testing.assert_allclose(blob[0, 0], want, atol=1e-6)
    feats = bb(small)
    np.testing.assert_allclose(
        feats.maps, np.maximum(w[:, 0, 0, 0, None, None] * blob[0], 0), atol=1e-5
    )

    # channels last: N,H,W,3 in, Transpose, 1x1 conv, Transpose back: N,H,W,4 out
    w3 = rng.normal(size=(4, 3, 1, 1)).astype(np.float32)
    nodes = [
        helper.make_node("Transpose", ["image"], ["nchw"], perm=[0, 3, 1, 2]),
        helper.make_node("Conv", ["nchw", "w"], ["conv"]),
        helper.make_node("Transpose", ["conv"], ["feat"], perm=[0, 2, 3, 1]),
    ]
    nhwc = helper.make_graph(
        nodes,
        "nhwc",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["n", "h", "w", 3])],
        [helper.make_tensor_value_info("feat", TensorProto.FLOAT, ["n", "h", "w", 4])],
        [numpy_helper.from_array(w3, "w")],
    )
    path = tmp_path / "nhwc.onnx"
    onnx.save(portable_model(nhwc), str(path))
    for layer in ("feat", "conv"):  # N,H,W,C and N,C,H,W tensors both come out as C,h,w
        bb = Backbone(path, layer=layer, input_size=(64, 96), threads=1)
        blob, _ = bb.preprocess(chelsea)
        assert blob.shape == (1, 64, 96, 3)
        feats = bb(chelsea)
        assert feats.maps.shape == (4, 64, 96)
        want = np.einsum("oc,hwc->ohw", w3[:, :, 0, 0], blob[0])
        np.testing.assert_allclose(feats.maps, want, rtol=1e-4, atol=1e-4)


@pytest.fixture(scope="module")
def tf_style_model(tmp_path_factory):
    """A TensorFlow-style model with fully fixed shapes: input 1x64x96x3 -> Transpose -> 1x1
    conv stride 2 -> Relu 1x8x32x48 (N,C,H,W) -> Transpose 1x32x48x8 (N,H,W,C), each also
    behind an identity Reshape (an op that says nothing about layout). Returns (path, w)."""
    w = np.random.default_rng(5).normal(size=(8, 3, 1, 1)).astype(np.float32)
    nodes = [
        helper.make_node("Transpose", ["image"], ["nchw"], perm=[0, 3, 1, 2]),
        helper.make_node("Conv", ["nchw", "w"], ["conv"], strides=[2, 2]),
        helper.make_node("Relu", ["conv"], ["relu"]),
        helper.make_node("Transpose", ["relu"], ["relu_nhwc"], perm=[0, 2, 3, 1]),
        helper.make_node("Reshape", ["relu", "first"], ["reshaped_nchw"]),
        helper.make_node("Reshape", ["relu_nhwc", "last"], ["reshaped_nhwc"]),
    ]
    out = [
        helper.make_tensor_value_info(n, TensorProto.FLOAT, None)
        for n in ("relu_nhwc", "reshaped_nchw", "reshaped_nhwc")
    ]
    graph = helper.make_graph(
        nodes,
        "tf_style",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 64, 96, 3])],
        out,
        [
            numpy_helper.from_array(w, "w"),
            numpy_helper.from_array(np.array([1, 8, 32, 48], np.int64), "first"),
            numpy_helper.from_array(np.array([1, 32, 48, 8], np.int64), "last"),
        ],
    )
    model = portable_model(graph)
    path = tmp_path_factory.mktemp("tf") / "tf_style.onnx"
    onnx.save(model, str(path))
    return path, w


@pytest.mark.parametrize(
    "layer, shape",
    [
        ("relu", (1, 8, 32, 48)),  # made by Conv (through Relu): channels first
        ("relu_nhwc", (1, 32, 48, 8)),  # Transpose [0, 2, 3, 1]: channels last
        ("reshaped_nchw", (1, 8, 32, 48)),  # opaque op: (32, 48) has the input's 64:96
        ("reshaped_nhwc", (1, 32, 48, 8)),
    ],
)
def test_fixed_shape_channels_last_input_gets_each_layers_layout_right(
    tf_style_model, chelsea, layer, shape
):
    path, w = tf_style_model
    bb = Backbone(path, layer=layer, threads=1)
    assert bb.input_size == (64, 96)
    assert next(x.shape for x in bb.layers() if x.name == layer) == shape
    blob, _ = bb.preprocess(chelsea)
    assert blob.shape == (1, 64, 96, 3)
    feats = bb(chelsea)
    assert feats.maps.shape == (8, 32, 48)
    want = np.maximum(np.einsum("oc,hwc->ohw", w[:, :, 0, 0], blob[0, ::2, ::2]), 0)
    np.testing.assert_allclose(feats.maps, want, rtol=1e-4, atol=1e-4)
    assert feats.valid == (0.0, 32.0, 0.0, 48.0)


def test_map_of_an_input_not_a_multiple_of_the_stride_lands_where_the_object_is(tmp_path, chelsea):
    # one 32x32 stride-32 average pool, ceil mode: 300 px -> 10 cells covering 320 px
    pool = helper.make_node(
        "AveragePool", ["image"], ["pooled"], kernel_shape=[32, 32], strides=[32, 32], ceil_mode=1
    )
    graph = helper.make_graph(
        [pool],
        "stride32",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["n", 3, "h", "w"])],
        [helper.make_tensor_value_info("pooled", TensorProto.FLOAT, ["n", 3, "h2", "w2"])],
    )
    path = tmp_path / "stride32.onnx"
    onnx.save(portable_model(graph), str(path))
    bb = Backbone(path, input_size=300, mean=0, std=1, scale=1 / 255, threads=1)
    frame = (cv2.resize(chelsea, (300, 300)) * 0.2).astype(np.uint8)
    frame[:, 256:288] = 255  # a bright strip over map column 8
    feats = bb(frame)
    assert feats.maps.shape == (3, 10, 10)
    assert feats.valid == (0.0, 300 / 32, 0.0, 300 / 32)  # the 20 px overhang cut off
    heat = heatmap(feats, "mean")
    projected = cv2.resize(heat, (300, 300), interpolation=cv2.INTER_LINEAR)  # as overlay does
    cols = projected.mean(axis=0)
    hot = np.flatnonzero(cols > (cols.min() + cols.max()) / 2)
    assert abs(hot.mean() - 272) < 4, hot  # the strip's centre, not 255 (10 cells over 300 px)
    assert 252 <= hot.min() and hot.max() <= 292


def test_unavailable_provider_falls_back_to_cpu_with_one_warning(tiny_model):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        bb = Backbone(tiny_model[0], providers=["CUDAExecutionProvider", "cpu"], threads=1)
    assert len(caught) == 1 and "'CUDAExecutionProvider' not available" in str(caught[0].message)
    assert bb.providers == ["CPUExecutionProvider"]


def test_threads_and_spinning_reach_the_session(tiny_model):
    bb = Backbone(tiny_model[0], threads=2, spinning=False)
    opts = bb.session.get_session_options()
    assert opts.intra_op_num_threads == 2
    assert opts.get_session_config_entry("session.intra_op.allow_spinning") == "0"


# ---------------------------------------------------------------- bad models and layers
def test_missing_model_file(tmp_path):
    with pytest.raises(LiveheatError, match="not found"):
        Backbone(tmp_path / "nope.onnx")


def test_missing_bundled_model_names_the_export_script(tmp_path, monkeypatch):
    monkeypatch.setenv("LIVEHEAT_MODELS", str(tmp_path))
    assert models_dir() == tmp_path
    with pytest.raises(LiveheatError, match="export_efficientnet_lite0.py"):
        Backbone("int8")


def test_file_that_is_not_onnx(tmp_path, chelsea):
    png = tmp_path / "cat.onnx"
    cv2.imwrite(str(png.with_suffix(".png")), chelsea)
    png.write_bytes(png.with_suffix(".png").read_bytes())
    with pytest.raises(LiveheatError, match="not a readable ONNX model"):
        Backbone(png)
    empty = tmp_path / "empty.onnx"
    empty.write_bytes(b"")
    with pytest.raises(LiveheatError, match="empty"):
        Backbone(empty)


@pytest.mark.parametrize("keep", [0.5, 0.9, 0.999])
def test_truncated_model(tmp_path, bb_fp32, keep):
    data = bb_fp32.model_path.read_bytes()
    cut = tmp_path / "cut.onnx"
    cut.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(LiveheatError, match="ONNX|onnxruntime"):
        Backbone(cut)


def test_model_without_image_input(tmp_path):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 16])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 4])
    w = numpy_helper.from_array(np.ones((16, 4), np.float32), "w")
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "mlp", [x], [y], [w])
    path = tmp_path / "mlp.onnx"
    onnx.save(portable_model(graph), str(path))
    with pytest.raises(LiveheatError, match="no image-like input"):
        Backbone(path)


def test_layer_that_is_not_4d(tiny_model):
    with pytest.raises(LiveheatError, match="2-D.*must be 4-D"):
        Backbone(tiny_model[0], layer="scores")


def test_misspelt_layer_lists_the_closest_names(bb_fp32):
    with pytest.raises(LiveheatError, match="did you mean 'features'") as e:
        Backbone(layer="featurs")
    assert "liveheat layers" in str(e.value)
    with pytest.raises(LiveheatError, match="blocks.1"):
        Backbone(layer="block.10")


def test_bad_model_never_crashes_the_process(tmp_path, bb_fp32):
    cut = tmp_path / "cut.onnx"
    cut.write_bytes(bb_fp32.model_path.read_bytes()[:100_000])
    for args in (["layers", str(cut)], ["layers", str(tmp_path / "missing.onnx")]):
        r = subprocess.run(
            [sys.executable, "-m", "liveheat", *args], capture_output=True, text=True, timeout=120
        )
        assert r.returncode == 2, r.stderr
        assert r.stderr.startswith("liveheat: error: ") and r.stderr.count("\n") == 1
        assert "Traceback" not in r.stderr


def _cut_initializer(src, dst, name: str, nbytes: int = 8) -> None:
    """Copy an ONNX model with the raw data of initializer `name` cut short by `nbytes`."""
    model = onnx.load(str(src))
    (init,) = [t for t in model.graph.initializer if t.name == name]
    init.raw_data = init.raw_data[:-nbytes]
    onnx.save(model, str(dst))


def test_corrupt_classifier_initializer_is_named(tiny_model, tmp_path):
    bad = tmp_path / "bad.onnx"
    _cut_initializer(tiny_model[0], bad, "fc.w")
    with pytest.raises(LiveheatError, match=r"bad.onnx: corrupt initializer 'fc.w' \(cannot resh"):
        Backbone(bad)


def _failing_reshape_model(path) -> None:
    """Conv -> Relu -> Reshape to a fixed 1x4x7x7: loads fine, fails inside onnxruntime's run."""
    nodes = [
        helper.make_node("Conv", ["image", "w"], ["conv"]),
        helper.make_node("Relu", ["conv"], ["relu"]),
        helper.make_node("Reshape", ["relu", "shape"], ["flat"]),
    ]
    graph = helper.make_graph(
        nodes,
        "runfail",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["n", 3, "h", "w"])],
        [helper.make_tensor_value_info("flat", TensorProto.FLOAT, None)],
        [
            numpy_helper.from_array(np.ones((4, 3, 1, 1), np.float32), "w"),
            numpy_helper.from_array(np.array([1, 4, 7, 7], np.int64), "shape"),
        ],
    )
    model = portable_model(graph)
    onnx.save(model, str(path))


@pytest.mark.parametrize("case", ["head", "conv", "run"])
def test_bad_model_in_liveheat_image_gives_exactly_one_error_line(tmp_path, tiny_model, case):
    bad = tmp_path / f"{case}.onnx"
    if case == "head":  # our head detection reads it
        _cut_initializer(tiny_model[0], bad, "fc.w")
    elif case == "conv":  # only onnxruntime reads it (at load)
        _cut_initializer(tiny_model[0], bad, "conv2.w")
    else:  # onnxruntime fails a node at run time
        _failing_reshape_model(bad)
    img = tmp_path / "grey.png"
    cv2.imwrite(str(img), np.full((64, 80, 3), 128, np.uint8))
    r = run_cli("image", img, "-o", tmp_path / "out.png", "--model", bad, "--method", "mean")
    assert r.returncode == 2, r.stderr
    assert r.stderr.startswith("liveheat: error: ") and r.stderr.count("\n") == 1, r.stderr
    want = {"head": "corrupt initializer 'fc.w'", "conv": "conv2.w", "run": "Reshape"}[case]
    assert want in r.stderr
    assert not (tmp_path / "out.png").exists()


# ---------------------------------------------------------------- command line
def run_cli(*args) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "liveheat", *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def test_cli_layers_lists_the_bundled_and_a_user_model(bb_fp32, tiny_model):
    r = run_cli("layers")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert len(lines) == len(bb_fp32.layers()) + 2
    assert any(x.split()[:2] == ["features", "Clip"] and "default, cam" in x for x in lines)
    assert any(x.split()[:2] == ["blocks.10", "Add"] for x in lines)
    r = run_cli("layers", tiny_model[0])
    assert r.returncode == 0, r.stderr
    assert [x.split()[0] for x in r.stdout.splitlines()[1:-1]] == [
        "conv1",
        "relu1",
        "conv2",
        "relu2",
    ]


def test_cli_image_without_heat_runs_the_model(tmp_path, chelsea, bb_fp32):
    import liveheat

    src, out = tmp_path / "cat.png", tmp_path / "out.png"
    cv2.imwrite(str(src), chelsea)
    r = run_cli("image", src, "-o", out)
    assert r.returncode == 0, r.stderr
    ranked = [
        x.split() for x in r.stdout.splitlines() if x.strip()[:2] in {f"{i}." for i in range(1, 6)}
    ]
    assert [x[0] for x in ranked] == ["1.", "2.", "3.", "4.", "5."]
    assert int(ranked[0][2]) in CATS
    # the written image is exactly the API's overlay of the API's CAM
    want = liveheat.overlay(chelsea, heatmap(bb_fp32(chelsea), "cam"))
    np.testing.assert_array_equal(cv2.imread(str(out)), want)


def test_cli_image_model_flags(tmp_path, chelsea):
    src, out = tmp_path / "cat.png", tmp_path / "out.png"
    cv2.imwrite(str(src), chelsea)
    flags = ["--model", "int8", "--layer", "blocks.10", "--method", "eigen", "--input-size", "320"]
    r = run_cli("image", src, "-o", out, *flags, "--target", "tabby")
    assert r.returncode == 0, r.stderr
    assert "efficientnet_lite0_int8.onnx, layer blocks.10, method eigen" in r.stdout
    assert cv2.imread(str(out)).shape == chelsea.shape
    r = run_cli("image", src, "-o", tmp_path / "no.png", "--layer", "blocks.10")
    assert r.returncode == 2 and not (tmp_path / "no.png").exists()
    assert (
        r.stderr.startswith("liveheat: error: method 'cam' unavailable") and "'eigen'" in r.stderr
    )


def test_thread_count_and_input_size_have_upper_bounds(chelsea):
    # 100000 threads would each be an OS thread made at load (the machine runs out of
    # processes); an 8192 input needs gigabytes of activations: both refused up front
    with pytest.raises(LiveheatError, match=r"bad threads 100000; expected .* \[1, 256\]"):
        Backbone(threads=100000)
    with pytest.raises(LiveheatError, match=r"input size 8192 too large; at most 4096"):
        Backbone(threads=1, input_size=8192)
    bb = Backbone(threads=1, input_size=(64, 4096))  # the largest side allowed still works
    assert bb(chelsea).maps.shape == (1280, 2, 128)
