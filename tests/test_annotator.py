"""The per-frame Annotator, annotate_video and the Output protocol (bundled clip and model)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest

import liveheat
from liveheat.errors import LiveheatError
from liveheat.model.backbone import Backbone
from liveheat.model.heatmaps import heatmap
from liveheat.outputs.base import Output, OutputBase
from liveheat.pipeline.annotator import Annotation, Annotator
from liveheat.pipeline.runner import Runner
from liveheat.pipeline.video import annotate_video, run_video
from liveheat.settings.fields import Settings
from liveheat.sources.source import open_source
from tests.helpers.videos import read_video

CLIP = liveheat.bundled_clip()


@pytest.fixture(scope="module")
def bb():
    return Backbone(input_size=160, spinning=False)


class Keep(OutputBase):
    """Keeps every drawn image and annotation it is given, in order."""

    records = True

    def __init__(self) -> None:
        self.images: list[np.ndarray] = []
        self.annotations: list[Annotation] = []

    def write(self, image, frame=None, annotation=None) -> None:
        self.images.append(image.copy())
        self.annotations.append(annotation)


def test_an_annotator_loop_draws_what_the_runner_draws(bb):
    # smoothing, every 2nd frame inferred, colours and HUD-free: the same class does the work
    settings = dict(hud=False, smooth=0.6, every=2, method="cam", colormap="turbo")
    keep = Keep()
    with open_source(CLIP) as src:
        Runner(src, Settings(**settings), outputs=[keep], backbone=bb, max_frames=24).run()
    ann = Annotator(Settings(**settings), backbone=bb)
    with open_source(CLIP) as src:
        loop = [ann.annotate(frame) for frame, _ in zip(src, range(24), strict=False)]
    assert len(keep.images) == len(loop) == 24
    for i, (a, b) in enumerate(zip(keep.images, loop, strict=True)):
        np.testing.assert_array_equal(a, b.image, err_msg=f"frame {i}")
    for a, b in zip(keep.annotations, loop, strict=True):
        np.testing.assert_array_equal(a.heat, b.heat)
        np.testing.assert_array_equal(a.raw, b.raw)
        assert (a.index, a.fresh, a.target) == (b.index, b.fresh, b.target)
    # every 2nd frame is inferred: odd frames reuse the map of the frame before
    assert [a.fresh for a in loop[:6]] == [True, False] * 3
    assert [a.index for a in loop[:6]] == [0, 0, 2, 2, 4, 4]


def test_an_annotation_holds_the_map_raw_and_smoothed_and_the_target(bb):
    ann = Annotator(backbone=bb, hud=False, smooth=0.8)
    with open_source(CLIP) as src:
        frames = [f.image for f, _ in zip(src, range(4), strict=False)]
    first, second = ann.annotate(frames[0]), ann.annotate(frames[1])
    feats = bb(frames[1])
    np.testing.assert_allclose(second.raw, heatmap(feats, "cam"), rtol=1e-5, atol=1e-6)
    assert second.heat.shape == second.raw.shape == (5, 5)
    assert not np.allclose(second.heat, second.raw)  # smoothed towards the first map
    np.testing.assert_array_equal(first.heat, first.raw)  # the first map is its own average
    assert second.target == int(feats.probs().argmax())  # cam explains the top-1 class
    assert second.image.shape == frames[1].shape and second.image.dtype == np.uint8
    assert np.abs(second.image.astype(int) - frames[1]).mean() > 10  # heat was drawn
    assert second.features.maps.shape[0] == 1280 and second.note is None
    # reset: the next frame starts a new smoothing, as if it were the first
    ann.reset()
    again = ann.annotate(frames[1])
    np.testing.assert_array_equal(again.heat, again.raw)


def test_a_bad_override_is_refused_and_a_bad_live_change_is_undone_with_a_note(bb):
    with pytest.raises((LiveheatError, ValueError), match="alpha"):
        Annotator(backbone=bb, alpha=2.0)
    early = Backbone(input_size=128, layer="blocks.1", spinning=False)
    ann = Annotator(backbone=early, hud=False, method="mean")
    frame = np.full((96, 128, 3), 90, np.uint8)
    frame[20:60, 30:90] = 220
    ok = ann.annotate(frame)
    ann.settings.update(method="cam")  # no classifier behind blocks.1
    undone = ann.annotate(frame)
    assert undone.note.startswith("live change undone (method='cam')")
    assert ann.settings.method == "mean"
    np.testing.assert_array_equal(undone.image, ok.image)


def test_annotate_video_writes_the_file_and_maps_the_settings_ask_for(tmp_path):
    out, maps = tmp_path / "clip.avi", tmp_path / "maps.npz"
    stats = annotate_video(
        CLIP, out, max_frames=12, input_size=128, dump_maps=str(maps), every=3, progress=False
    )
    assert stats.frames_out == 12 and stats.frames_inferred == 4
    n, fps, size, first = read_video(out)
    assert (n, size) == (12, (1280, 720)) and fps == pytest.approx(25.0)
    with np.load(maps) as z:
        assert z["frames"].tolist() == [0, 3, 6, 9] and z["maps"].shape == (4, 4, 4)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.avi", "maps.npz"]


def test_run_video_writes_what_its_settings_ask_for(tmp_path):
    # the old run_video silently wrote nothing for Settings(output=...)
    out = tmp_path / "o.avi"
    stats = run_video(CLIP, Settings(output=str(out), input_size=128), max_frames=5)
    assert stats.frames_out == 5 and read_video(out)[0] == 5


def test_the_runner_refuses_what_is_not_an_output(bb):
    class NoProtocol:
        def write(self, image, frame):
            pass

    with open_source(CLIP) as src, pytest.raises(TypeError, match="is not an output"):
        Runner(src, Settings(), outputs=[NoProtocol()], backbone=bb)
    assert isinstance(Keep(), Output)


def test_the_public_api_names_load_and_import_changes_nothing_process_wide():
    code = """
import json, os, sys
env = dict(os.environ)
import liveheat
heavy = [m for m in ("cv2", "numpy", "onnxruntime") if m in sys.modules]
same = env == dict(os.environ)  # (OpenCV's own import sets Qt paths later: not liveheat's doing)
names = [n for n in liveheat.__all__ if getattr(liveheat, n, None) is None]
blas = os.environ.get("OPENBLAS_NUM_THREADS")
print(json.dumps({"heavy": heavy, "env_same": same, "missing": names, "blas": blas}))
"""
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
    r = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    )
    got = json.loads(r.stdout)
    assert got == {"heavy": [], "env_same": True, "missing": [], "blas": None}
    for name in ("open_source", "VideoSink", "Window", "StreamServer", "Annotator",
                 "annotate_video", "Settings", "LiveheatError"):  # fmt: skip
        assert name in liveheat.__all__ and getattr(liveheat, name) is not None
    assert cv2.__version__  # (the test process itself has OpenCV loaded; the child did not)
