"""Maps that hold still on video (the defaults: target lock, sign continuity, smoothing, a steady
scale), on the bundled clip and on clips built from real photographs."""

from __future__ import annotations

import subprocess
import sys

import cv2
import numpy as np
import pytest

import liveheat
from liveheat.model.backbone import Backbone
from liveheat.model.heatmaps import heatmap
from liveheat.model.stability import correlation
from liveheat.pipeline.annotator import Annotator
from liveheat.settings.fields import Settings
from tests.helpers.clips import moving_object_clip, shots_clip

CLIP = liveheat.bundled_clip()


@pytest.fixture(scope="module")
def bb():
    return Backbone(spinning=False)


@pytest.fixture(scope="module")
def bunny():
    with liveheat.open_source(CLIP) as src:
        return [f.image for f in src]


@pytest.fixture(scope="module")
def shots():
    return shots_clip()


def annotate(bb, frames, **settings):
    ann = Annotator(Settings(hud=False, **settings), backbone=bb)
    return [ann.annotate(f) for f in frames]


def within_shots(out, cuts):
    starts = set(cuts)
    return [
        correlation(a.heat, b.heat)
        for i, (a, b) in enumerate(zip(out, out[1:], strict=False), 1)
        if i not in starts
    ]


@pytest.mark.parametrize("method", ["cam", "eigen"])
def test_no_two_consecutive_drawn_maps_of_a_shot_disagree(bb, bunny, shots, method):
    frames, cuts = shots
    for clip, clip_cuts in ((bunny, [0]), (frames, cuts)):
        out = annotate(bb, clip, method=method)
        corr = within_shots(out, clip_cuts)
        assert min(corr) >= 0.5, (method, min(corr))
    # the control: today's per-frame maps (each frame's own top-1 map) do flip on the clip
    today = [heatmap(bb(f), method) for f in bunny]
    assert min(correlation(a, b) for a, b in zip(today, today[1:], strict=False)) < 0.5


def test_the_held_target_changes_at_most_once_per_50_frames_on_the_bundled_clip(bb, bunny):
    out = annotate(bb, bunny, method="cam")
    targets = [a.target for a in out]
    changes = sum(1 for a, b in zip(targets, targets[1:], strict=False) if a != b)
    assert changes <= len(bunny) // 50, targets
    top1 = [a.target for a in annotate(bb, bunny, method="cam", target="top1")]
    assert (
        sum(1 for a, b in zip(top1, top1[1:], strict=False) if a != b) > 10
    )  # what the lock holds back


def test_after_a_cut_the_map_belongs_to_the_new_shot_within_two_frames(bb, shots):
    frames, cuts = shots
    out = annotate(bb, frames, method="cam")
    assert [i for i, a in enumerate(out) if a.cut] == cuts  # every cut found, no other
    for c in cuts[1:]:
        assert any(correlation(out[c + k].heat, out[c + k].raw) >= 0.9 for k in range(3)), c


@pytest.mark.parametrize("method", ["cam", "eigen"])
def test_the_drawn_map_follows_a_moving_object_with_at_most_two_frames_lag(bb, method):
    frames, _ = moving_object_clip()
    out = annotate(bb, frames, method=method)

    def peak_x(m):
        w = np.clip(m - np.median(m), 0, None)
        return float((w.sum(axis=0) * np.arange(m.shape[1])).sum() / max(w.sum(), 1e-9))

    raw = np.array([peak_x(a.raw) for a in out])
    drawn = np.array([peak_x(a.heat) for a in out])
    assert raw[-1] - raw[4] > 2  # the raw heat really moves with the cat, left to right
    errs = [np.mean(np.abs(drawn[k + 4 :] - raw[4 : len(raw) - k])) for k in range(6)]
    assert int(np.argmin(errs)) <= 2, errs


def test_the_colour_scale_is_steady_within_a_shot(bb, bunny):
    out = annotate(bb, bunny[:60], method="cam")
    lows, highs = zip(*(a.scale for a in out), strict=False)
    per_frame = [(float(a.heat.min()), float(a.heat.max())) for a in out]
    # the steady range moves far less from frame to frame than each map's own range does
    steady_jump = np.median(np.abs(np.diff(highs)))
    own_jump = np.median(np.abs(np.diff([hi for _, hi in per_frame])))
    assert steady_jump < 0.5 * own_jump
    assert all(a.steady for a in out)
    assert all(
        hi >= float(a.heat.max()) - 1e-4 for a, hi in zip(out, highs, strict=False)
    )  # never clips


def test_dump_maps_holds_drawn_raw_targets_cuts_and_frames_and_image_draws_one(tmp_path):
    maps, out = tmp_path / "maps.npz", tmp_path / "o.avi"
    cmd = [sys.executable, "-m", "liveheat", "run", CLIP, "-o", str(out), "--no-show"]
    cmd += ["--dump-maps", str(maps), "--max-frames", "20", "--every", "2", "--input-size", "160"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    with np.load(maps) as z:
        assert set(z.files) >= {"maps", "raw", "targets", "cuts", "frames", "scales"}
        assert z["frames"].tolist() == list(range(0, 20, 2))
        assert z["maps"].shape == z["raw"].shape == (10, 5, 5)
        assert z["cuts"].tolist() == [0] and z["targets"].min() >= 0
        assert not np.allclose(z["maps"][5], z["raw"][5])  # drawn = smoothed
        drawn3 = z["maps"][3]
    image = tmp_path / "frame.png"
    cap = cv2.VideoCapture(CLIP)
    cv2.imwrite(str(image), cap.read()[1])
    cap.release()
    png = tmp_path / "one.png"
    cmd = [sys.executable, "-m", "liveheat", "image", str(image), "-o", str(png)]
    r = subprocess.run([*cmd, "--heat", str(maps), "--index", "3"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    expected = liveheat.overlay(cv2.imread(str(image)), drawn3)
    assert np.abs(cv2.imread(str(png)).astype(int) - expected).max() <= 1
    r = subprocess.run([*cmd, "--heat", str(maps)], capture_output=True, text=True)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "--index" in r.stderr


def test_norm_fixed_takes_vmin_vmax_from_flags_and_config_and_says_when_they_are_missing(
    tmp_path,
):
    base = [sys.executable, "-m", "liveheat", "run", CLIP, "--no-show", "--max-frames", "3"]
    base += ["--input-size", "128", "--no-hud"]
    r = subprocess.run([*base, "-o", str(tmp_path / "a.avi"), "--norm", "fixed"],
                       capture_output=True, text=True)  # fmt: skip
    assert r.returncode == 2 and "--vmin" in r.stderr and r.stderr.count("\n") == 1
    cfg = tmp_path / "liveheat.toml"
    cfg.write_text('norm = "fixed"\nvmin = 0.0\nvmax = 40.0\n')
    for extra in (["--norm", "fixed", "--vmin", "0", "--vmax", "40"], ["--config", str(cfg)]):
        out = tmp_path / f"{len(extra)}.avi"
        r = subprocess.run([*base, "-o", str(out), *extra], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        assert out.is_file()


def test_a_small_frame_keeps_the_hud_under_15_percent_and_parts_can_be_chosen(bb, bunny):
    small = [cv2.resize(f, (176, 144)) for f in bunny[:30]]
    ann, bare = Annotator(backbone=bb), Annotator(Settings(hud=False), backbone=bb)
    for f in small:
        a, b = ann.annotate(f).image, bare.annotate(f).image
        assert (np.abs(a.astype(int) - b).sum(axis=2) > 0).mean() <= 0.15
    frame = cv2.resize(bunny[10], (640, 360))
    only_bar = Annotator(Settings(hud_parts="bar"), backbone=bb).annotate(frame).image
    plain = Annotator(Settings(hud=False), backbone=bb).annotate(frame).image
    changed = np.abs(only_bar.astype(int) - plain).sum(axis=2) > 0
    assert changed[:, -60:].any() and not changed[:40, :200].any()  # the bar, no label box


def test_auto_hud_keeps_the_perf_line_out_of_files_and_hands_it_to_viewers(bb, bunny):
    frame = cv2.resize(bunny[10], (640, 360))
    rec = Annotator(backbone=bb)  # recording (a file is written): label and bar only
    a = rec.annotate(frame, perf="25 fps  31 ms/frame")
    live = Annotator(backbone=bb)
    live.recording = False  # only viewers: the perf line is drawn too
    b = live.annotate(frame, perf="25 fps  31 ms/frame")
    assert a.perf == "25 fps  31 ms/frame" and b.perf is None
    # the viewer's image has one more text line in the HUD box (top-left) than the file's
    box_a = (a.image[:120, :300].astype(int).sum(axis=2) < 150).sum()
    box_b = (b.image[:120, :300].astype(int).sum(axis=2) < 150).sum()
    assert box_b > box_a


def test_a_recorded_run_reports_processing_time_not_queue_wait():
    from liveheat.pipeline.stats import RunStats

    stats = RunStats()
    for ms in (30.0, 32.0, 31.0):
        stats._processed(ms / 1000)
        stats._written(0.0, -0.5)  # a frame that waited half a second in the queues
    assert stats.hud_line(live=False).endswith("31 ms/frame")
    assert "500 ms" in stats.hud_line(live=True)  # live: capture-to-output latency
