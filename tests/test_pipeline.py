"""The video runner on the real model and the real clip: order, maps, live policy, shutdown.

Outputs here are real ones (VideoSink) or a plain collector implementing the output protocol.
"""

from __future__ import annotations

import contextlib
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest
import skimage.data

import liveheat
from liveheat.draw.overlay import overlay
from liveheat.errors import LiveheatError
from liveheat.model.backbone import Backbone
from liveheat.model.heatmaps import heatmap
from liveheat.model.stability import Stabilizer
from liveheat.outputs.base import OutputBase
from liveheat.outputs.maps import MapsFile
from liveheat.pipeline.runner import Runner
from liveheat.pipeline.stats import RunStats
from liveheat.pipeline.video import run_video
from liveheat.settings.fields import Settings
from liveheat.sources.source import open_source
from tests.helpers.videos import read_video

CLIP = Path(liveheat.__file__).parent / "data" / "bigbuckbunny.mp4"
N_CLIP = 132
STAGES = ("liveheat-capture", "liveheat-infer", "liveheat-render")


class Collect(OutputBase):
    """An output that remembers what it was given: every index, copies of the chosen frames."""

    def __init__(self, keep=(), on_write=None) -> None:
        self.indices: list[int] = []
        self.shapes: set[tuple[int, ...]] = set()
        self.keep = set(keep)
        self.images: dict[int, np.ndarray] = {}
        self.on_write = on_write
        self.stop_requested = False

    def write(self, image, frame, annotation=None) -> None:
        self.indices.append(frame.index)
        self.shapes.add(image.shape)
        if frame.index in self.keep:
            self.images[frame.index] = image.copy()
        if self.on_write is not None:
            self.on_write(self, image, frame)


#: today's per-frame maps: each frame's top class, unsmoothed, on its own colour range (the
#: tests that compare a drawn frame with overlay(frame, map) of one map use these)
RAW = dict(target="top1", smooth=0.0, scale="frame")


def run(src, settings, outputs, **kw):
    """Runner.run with settings.dump_maps saved by a MapsFile output, as the command line does."""
    with contextlib.ExitStack() as stack:
        if settings.dump_maps:
            outputs = [*outputs, stack.enter_context(MapsFile(settings.dump_maps))]
        return Runner(src, settings, outputs=outputs, **kw).run()


def clip_frames(indices) -> dict[int, np.ndarray]:
    want, out = set(indices), {}
    cap = cv2.VideoCapture(str(CLIP))
    i = 0
    while len(out) < len(want):
        ok, image = cap.read()
        assert ok
        if i in want:
            out[i] = image
        i += 1
    cap.release()
    return out


def stage_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith(STAGES)]


@pytest.fixture(scope="module")
def bb():
    return Backbone(input_size=128, spinning=False)


def test_recorded_every_frame_in_order_with_its_own_heatmap(bb, tmp_path):
    keep = (0, 1, 70, 131)
    out = Collect(keep=keep)
    dump = tmp_path / "maps.npz"
    settings = Settings(hud=False, dump_maps=str(dump), **RAW)
    with open_source(CLIP) as src:
        stats = run(src, settings, [out], backbone=bb)
    assert out.indices == list(range(N_CLIP))
    assert out.shapes == {(720, 1280, 3)}
    snap = stats.snapshot()
    assert (snap["frames_in"], snap["frames_out"], snap["frames_inferred"]) == (132, 132, 132)
    assert snap["dropped"] == 0 and snap["error"] is None
    assert snap["latency_ms_p50"] > 0 and snap["latency_ms_p95"] >= snap["latency_ms_p50"]
    with np.load(dump) as z:
        maps, frames = z["maps"], z["frames"]
    assert maps.dtype == np.float32 and maps.shape[0] == N_CLIP and maps.ndim == 3
    assert frames.tolist() == list(range(N_CLIP))
    originals = clip_frames(keep)
    for i in keep:
        direct = heatmap(bb(originals[i]))
        np.testing.assert_allclose(maps[i], direct, rtol=1e-4, atol=1e-5)
        # the output frame is exactly the overlay of frame i with the map of frame i
        np.testing.assert_array_equal(out.images[i], overlay(originals[i], maps[i]))
        diff = np.abs(out.images[i].astype(np.int16) - originals[i]).mean()
        assert diff > 10, f"frame {i}: overlay barely changed the frame ({diff:.1f})"
    # plausible heat: it varies within a frame and moves smoothly from frame to frame
    assert all(float(m.std()) > 0 for m in maps)
    flat = maps.reshape(N_CLIP, -1)
    corr = [np.corrcoef(flat[i], flat[i + 1])[0, 1] for i in range(N_CLIP - 1)]
    assert np.median(corr) > 0.8


def test_every_3_reuses_the_last_map_and_keeps_every_frame(bb, tmp_path):
    out = Collect(keep=(1, 3))
    dump = tmp_path / "maps.npz"
    settings = Settings(hud=False, every=3, dump_maps=str(dump), **RAW)
    with open_source(CLIP) as src:
        stats = run(src, settings, [out], backbone=bb)
    assert out.indices == list(range(N_CLIP))
    assert stats.snapshot()["frames_inferred"] == 44
    with np.load(dump) as z:
        assert z["frames"].tolist() == list(range(0, N_CLIP, 3))
        maps = z["maps"]
    frames = clip_frames((0, 1, 3))
    np.testing.assert_allclose(maps[0], heatmap(bb(frames[0])), rtol=1e-4, atol=1e-5)
    # frame 1 is drawn with the map of frame 0, frame 3 with its own
    np.testing.assert_array_equal(out.images[1], overlay(frames[1], maps[0]))
    np.testing.assert_array_equal(out.images[3], overlay(frames[3], maps[1]))


def test_video_file_keeps_count_fps_and_size_with_hud(bb, tmp_path):
    from liveheat.outputs.video import VideoSink

    path = tmp_path / "out.avi"
    with open_source(CLIP) as src, VideoSink(path, fps=src.fps, size=src.size) as sink:
        stats = Runner(src, Settings(), outputs=[sink], backbone=bb).run()
    assert stats.frames_out == N_CLIP
    n, fps, _size, first = read_video(path)
    assert fps == pytest.approx(25.0)
    assert n == N_CLIP
    assert first.shape == (720, 1280, 3)
    original = clip_frames((0,))[0]
    assert np.abs(first.astype(np.int16) - original).mean() > 10


def test_image_folder_source_cat_and_cup(bb, tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    for name, image in (
        ("01_coffee.png", skimage.data.coffee()),
        ("02_cat.png", skimage.data.chelsea()),
    ):
        cv2.imwrite(str(folder / name), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    out = Collect(keep=(0, 1))
    dump = tmp_path / "maps.npz"
    with open_source(folder) as src:
        stats = run(src, Settings(hud=False, dump_maps=str(dump)), [out])
    assert out.indices == [0, 1]
    assert out.shapes == {(400, 600, 3)}  # the folder's first image sets the size
    assert "cat" in stats.snapshot()["top_class"]  # the last image is Chelsea the cat
    with np.load(dump) as z:
        cup = z["maps"][0]
    h, w = cup.shape
    y, x = np.unravel_index(int(cup.argmax()), cup.shape)
    assert h / 5 <= y < h * 4 / 5 and w / 5 <= x < w * 4 / 5, "espresso heat off the cup"


def test_mjpeg_stream_as_live_source(bb):
    from tests.helpers.mjpeg_server import MjpegServer

    out = Collect()
    with MjpegServer(CLIP, fps=25, size=(320, 180), limit=40) as srv:
        with open_source(srv.url) as src:
            assert src.live
            stats = Runner(src, Settings(), outputs=[out], backbone=bb, max_frames=15).run()
    assert stats.frames_out == 15 == len(out.indices)
    assert all(b > a for a, b in zip(out.indices, out.indices[1:], strict=False))
    assert out.shapes == {(180, 320, 3)}
    snap = stats.snapshot()
    assert snap["frames_inferred"] >= 1 and snap["latency_ms_p95"] is not None
    assert stage_threads() == []


def test_paced_live_source_drops_frames_instead_of_lagging(bb, tmp_path):
    import time

    from tests.helpers.mjpeg_server import load_frames

    # a 25 fps camera stand-in (no --max-fps) and an output that takes 80 ms a frame: the
    # runner must show the newest frames and drop the rest, not queue them up
    n, period = 50, 0.08
    for i, image in enumerate(load_frames(CLIP, size=(320, 180), limit=n)):
        cv2.imwrite(str(tmp_path / f"{i:03d}.png"), image)
    out = Collect(on_write=lambda *_: time.sleep(period))
    with open_source(tmp_path, live=True, fps=25) as src:
        stats = Runner(src, Settings(hud=False), outputs=[out], backbone=bb).run()
        captured = src.captured
    snap = stats.snapshot()
    assert captured == n  # the camera ran through its frames in real time
    assert stats.dropped_pipeline > n / 3  # the runner dropped frames ...
    assert snap["frames_out"] < n * 2 / 3
    assert all(b > a for a, b in zip(out.indices, out.indices[1:], strict=False))
    assert out.indices[-1] >= n - 3  # ... and was at the end when the camera was
    # about one output period (a frame waits for the output, then is written), not the three
    # or more of frames queued behind a slow output
    assert snap["latency_ms_p95"] <= 2.5 * period * 1000
    assert stage_threads() == []


def test_a_live_recording_keeps_wall_clock_time_despite_drops(bb, tmp_path):
    import time

    from liveheat.outputs.video import VideoSink
    from tests.helpers.mjpeg_server import load_frames

    n = 40  # 1.6 s of a 25 fps camera; the slow output takes about every other frame
    for i, image in enumerate(load_frames(CLIP, size=(320, 180), limit=n)):
        cv2.imwrite(str(tmp_path / f"{i:03d}.png"), image)
    slow = Collect(on_write=lambda *_: time.sleep(0.06))
    path = tmp_path / "live.avi"
    with open_source(tmp_path, live=True, fps=25) as src:
        with VideoSink(path, fps=25, size=src.size, by_timestamp=True) as sink:
            stats = Runner(src, Settings(hud=False), outputs=[slow, sink], backbone=bb).run()
    assert stats.frames_out < n * 0.8 and sink.repeated > 0
    shown = slow.indices[-1] - slow.indices[0] + 1  # the span of camera time on record
    assert abs(sink.frames_written - shown) <= 2  # ... is the file's length: no fast-forward
    with open_source(path) as back:
        assert back.frame_count == sink.frames_written


def test_error_in_a_stage_stops_everything_and_is_raised(bb):
    baseline = threading.active_count()
    out = Collect()
    with open_source(CLIP) as src:
        runner = Runner(src, Settings(method="channel:99999"), outputs=[out], backbone=bb)
        with pytest.raises(LiveheatError, match="channel"):
            runner.run()
    assert out.indices == []
    assert "channel" in runner.stats.snapshot()["error"]
    assert stage_threads() == []
    assert threading.active_count() <= baseline


def test_stop_from_an_output_and_stop_requested(bb):
    runner_box = []

    def stop_at_10(collector, image, frame):
        if len(collector.indices) == 10:
            runner_box[0].stop()

    out = Collect(on_write=stop_at_10)
    with open_source(CLIP) as src:
        runner = Runner(src, Settings(hud=False), outputs=[out], backbone=bb)
        runner_box.append(runner)
        stats = runner.run()
    assert out.indices == list(range(10)) and stats.frames_out == 10

    def request_at_7(collector, image, frame):
        collector.stop_requested = len(collector.indices) >= 7

    out = Collect(on_write=request_at_7)
    with open_source(CLIP) as src:
        Runner(src, Settings(hud=False), outputs=[out], backbone=bb).run()
    assert out.indices == list(range(7))
    assert stage_threads() == []


class Viewer(Collect):
    """A viewer that counts what it got, like the stream server (`frames_written`, no `records`)."""

    def write(self, image, frame, annotation=None) -> None:
        self.frames_written = len(self.indices) + 1
        super().write(image, frame, annotation)


def test_pause_repeats_the_frame_to_viewers_only_and_live_edits_apply(bb, tmp_path):
    from liveheat.outputs.video import VideoSink

    settings = Settings(hud=False)
    seen = {"repeats": 0, "jet": None, "bone": None}
    # should the repeats never come, resume anyway so that the test fails instead of hanging
    fallback = threading.Timer(10.0, settings.update, kwargs={"paused": False})

    def control(collector, image, frame):
        n = len(collector.indices)
        if n == 5:
            settings.update(paused=True)
            fallback.start()
        elif settings.paused:
            assert frame.index == 4  # the held frame
            seen["repeats"] += 1
            if seen["repeats"] == 2:
                seen["jet"] = image.copy()
                settings.update(colormap="bone")
            elif seen["repeats"] == 4:
                seen["bone"] = image.copy()
                settings.update(paused=False)

    out = Viewer(on_write=control)
    with open_source(CLIP) as src, VideoSink(tmp_path / "o.avi", fps=25, size=src.size) as sink:
        stats = Runner(src, settings, outputs=[out, sink], backbone=bb, max_frames=9).run()
        written = sink.frames_written
    fallback.cancel()
    assert stats.frames_out == 9 and written == 9  # the file got no repeats
    assert [i for i in out.indices if i != 4] == [0, 1, 2, 3, 5, 6, 7, 8]
    assert seen["repeats"] >= 4
    bone = seen["bone"]
    assert not np.array_equal(seen["jet"], bone)  # the colormap change showed while paused
    assert (
        np.abs(bone[..., 0].astype(int) - bone[..., 2]).mean()
        < np.abs(seen["jet"][..., 0].astype(int) - seen["jet"][..., 2]).mean()
    )


class Recorder(Collect):
    """A recording output (`records = True`, like VideoSink): every frame once, no repeats."""

    records = True


def test_a_pause_with_only_files_redraws_nothing(bb):
    settings = Settings(hud=False)
    resume = threading.Timer(0.5, settings.update, kwargs={"paused": False})

    def pause_at_5(rec, image, frame):
        if len(rec.indices) == 5:
            settings.update(paused=True)
            resume.start()

    rec = Recorder(on_write=pause_at_5)
    with open_source(CLIP) as src:
        runner = Runner(src, settings, outputs=[rec], backbone=bb, max_frames=10)
        renders = []
        draw = runner._draw
        runner._draw = lambda job, **kw: renders.append(job.seq) or draw(job, **kw)
        runner.run()
    resume.join()
    assert rec.indices == list(range(10))
    assert sorted(renders) == list(range(10))  # each frame drawn once: no repeats for nobody


def test_a_pause_mid_recording_changes_neither_the_file_nor_the_maps(bb, tmp_path):
    import hashlib
    import time

    def digest(image):
        return hashlib.sha1(np.ascontiguousarray(image)).hexdigest()

    def record(settings, viewer=None):
        rec = Recorder(
            on_write=lambda c, image, frame: c.images.update({frame.index: digest(image)})
        )
        outputs = [rec] if viewer is None else [viewer, rec]
        with open_source(CLIP) as src:
            stats = run(src, settings, outputs, backbone=bb, max_frames=20)
        with np.load(settings.dump_maps) as z:
            return rec, stats, z["frames"].tolist(), z["maps"]

    plain = Settings(hud=False, smooth=0.5, dump_maps=str(tmp_path / "plain.npz"))
    rec0, _, frames0, maps0 = record(plain)

    settings = Settings(hud=False, smooth=0.5, dump_maps=str(tmp_path / "paused.npz"))
    repeats = []
    fallback = threading.Timer(10.0, settings.update, kwargs={"paused": False})

    def control(viewer, image, frame):
        if settings.paused:
            repeats.append(frame.index)
            if len(repeats) == 2:  # live edits while paused: shown, then taken back
                settings.update(method="eigen", colormap="bone")
            elif len(repeats) == 4:
                settings.update(method="cam", colormap="jet")
            elif len(repeats) == 6:
                settings.update(paused=False)
        elif len(viewer.indices) == 5:
            time.sleep(0.3)  # the render stage runs ahead meanwhile (the queue fills)
            settings.update(paused=True)
            fallback.start()

    rec, stats, frames, maps = record(settings, Viewer(on_write=control))
    fallback.cancel()
    assert len(repeats) >= 6 and set(repeats) == {4}  # the held frame, repeated to the viewer
    assert frames == frames0 == list(range(20))  # every map once, in order
    np.testing.assert_allclose(maps, maps0, rtol=1e-5, atol=1e-6)
    assert rec.indices == rec0.indices == list(range(20))
    assert rec.images == rec0.images  # the smoother never saw the held frame again
    assert stats.frames_out == 20


def test_a_live_change_that_cannot_be_drawn_is_undone_and_the_run_goes_on(capsys):
    from liveheat.outputs.keys import Controls

    bb_early = Backbone(input_size=128, layer="blocks.1", spinning=False)
    settings = Settings(hud=False, method="mean")

    def change(viewer, image, frame):
        n = len(viewer.indices)
        if n == 3:
            settings.update(method="cam")  # no classifier behind blocks.1: no CAM
        elif n == 6:
            settings.update(method="channel:99999", colormap="bone")
        elif n == 9:
            settings.update(method="channel:3")  # a change that works stays

    viewer = Viewer(on_write=change, keep=(4, 7))
    viewer.controls = Controls(settings)  # like a window: the notice shows as a toast
    viewer.notify = viewer.controls.say
    with open_source(CLIP) as src:
        runner = Runner(src, settings, outputs=[viewer], backbone=bb_early, max_frames=12)
        stats = runner.run()
    assert viewer.indices == list(range(12)) and stats.snapshot()["error"] is None
    # the bad method is undone alone: the colormap posted with it stays (issue 13, row 9)
    assert settings.method == "channel:3" and settings.colormap == "bone"
    lines = [ln for ln in capsys.readouterr().err.splitlines() if "undone" in ln]
    assert lines[0].startswith("liveheat: live change undone (method='cam'): method 'cam'")
    assert lines[1].startswith("liveheat: live change undone (method='channel:99999'): channel")
    assert len(lines) == 2
    assert stats.snapshot()["notice"] == lines[1].removeprefix("liveheat: ")
    assert viewer.controls.message == stats.snapshot()["notice"]
    # the frames after an undone change are drawn with the method before it (mean); frame 7
    # with the colormap of before or after the change, as the render stage was ahead or not
    frames = clip_frames((4, 7))
    expected = overlay(frames[4], heatmap(bb_early(frames[4]), "mean"))
    np.testing.assert_array_equal(viewer.images[4], expected)
    heat7 = heatmap(bb_early(frames[7]), "mean")
    either = [overlay(frames[7], heat7, colormap=c) for c in ("jet", "bone")]
    assert any(np.array_equal(viewer.images[7], e) for e in either)


def test_smoothing_and_the_steady_scale_match_the_stabilizer(bb):
    # the runner draws each frame with the Stabilizer's map and steady colour range
    out = Collect(keep=(9,))
    settings = Settings(hud=False, smooth=0.8, smoother="ema")
    with open_source(CLIP) as src:
        Runner(src, settings, outputs=[out], backbone=bb, max_frames=10).run()
    frames = clip_frames(range(10))
    stab = Stabilizer()
    for i in range(10):
        stable = stab(bb(frames[i]), "cam", "auto", smooth=0.8, smoother="ema")
    lo, hi = stable.scale
    expected = overlay(frames[9], stable.heat, norm="fixed", vmin=lo, vmax=hi)
    assert np.abs(out.images[9].astype(int) - expected).max() <= 1
    assert not np.array_equal(out.images[9], overlay(frames[9], heatmap(bb(frames[9]))))


def test_run_video_opens_a_path_and_stats_have_every_key(bb):
    out = Collect()
    stats = run_video(str(CLIP), Settings(hud=False), outputs=[out], backbone=bb, max_frames=5)
    assert out.indices == [0, 1, 2, 3, 4]
    snap = stats.snapshot()
    assert sorted(snap) == sorted(RunStats.KEYS)
    assert snap["top_class"] and 0 < snap["top_score"] <= 1
    line = stats.summary("x.mp4")
    assert "5 frames in, 5 out" in line and line.endswith("wrote x.mp4")
    assert liveheat.run_video is run_video


@pytest.mark.parametrize("workers", [1, 3])
def test_inference_workers_keep_frame_order_and_maps(bb, tmp_path, workers):
    out = Collect(keep=(0, 1, 2, 29))
    dump = tmp_path / "maps.npz"
    settings = Settings(hud=False, every=2, dump_maps=str(dump), **RAW)
    with open_source(CLIP) as src:
        stats = run(src, settings, [out], backbone=bb, max_frames=30, infer_workers=workers)
    assert out.indices == list(range(30)) and stats.frames_inferred == 15
    with np.load(dump) as z:
        assert z["frames"].tolist() == list(range(0, 30, 2))
        maps = z["maps"]
    frames = clip_frames((0, 1, 2, 28, 29))
    np.testing.assert_allclose(maps[14], heatmap(bb(frames[28])), rtol=1e-4, atol=1e-5)
    for i, k in ((0, 0), (1, 0), (2, 1), (29, 14)):
        np.testing.assert_array_equal(out.images[i], overlay(frames[i], maps[k]))
    assert stage_threads() == []
