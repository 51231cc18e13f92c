"""Outputs: video files round-trip per extension with exact fps, the display check, the key table
and Controls, the HUD and help overlay (the window itself is tested under Xvfb in test_window)."""

from __future__ import annotations

import dataclasses
from fractions import Fraction

import av
import cv2
import numpy as np
import pytest

from liveheat.draw.hud import draw_hud
from liveheat.draw.overlay import resolve_colormap
from liveheat.errors import LiveheatError
from liveheat.outputs.display import display_available
from liveheat.outputs.keys import (
    COLORMAP_CYCLE,
    KEYS,
    METHOD_CYCLE,
    Controls,
    draw_help,
    help_lines,
)
from liveheat.outputs.video import CODECS, VideoSink
from liveheat.outputs.window import Window
from liveheat.settings.fields import Settings
from liveheat.sources.source import open_source
from tests.helpers.mjpeg_server import load_frames
from tests.helpers.videos import CLIP, read_frames

N = 10


@pytest.fixture(scope="module")
def clip_frames() -> list[np.ndarray]:
    """The first N real frames of the bundled clip, 1280x720."""
    return read_frames(CLIP, limit=N)


@pytest.fixture(scope="module")
def small_frames() -> list[np.ndarray]:
    return load_frames(CLIP, size=(320, 180), limit=N)


def _mad(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


# ------------------------------------------------------------------------------------ VideoSink


def _times(path) -> list[float]:
    """The presentation time of every frame of a file, in seconds, as PyAV decodes them."""
    with av.open(str(path)) as f:
        return [float(fr.time) for fr in f.decode(video=0)]


@pytest.mark.parametrize("ext", [".mp4", ".mov", ".avi", ".webm", ".mkv"])
def test_video_round_trips_per_extension(tmp_path, clip_frames, ext):
    path = tmp_path / f"out{ext}"
    with VideoSink(path, fps=25.0) as sink:
        assert sink.codec == CODECS[ext]  # the extension's codec from the one table
        for f in clip_frames:
            sink.write(f)
    assert sink.frames_written == N and sink.size == (1280, 720) and sink.resized == 0
    assert sink.files == [path] and sink.padded is None
    with open_source(path) as src:
        back = list(src)
    assert len(back) == N
    assert src.size == (1280, 720) and src.fps == pytest.approx(25.0, abs=1e-6)
    for original, frame in zip(clip_frames, back, strict=True):
        assert frame.image.shape == original.shape
        assert _mad(frame.image, original) < 6  # lossy, but the same pictures
    assert _mad(back[0].image, clip_frames[-1]) > _mad(back[0].image, clip_frames[0])


def test_fractional_fps_is_written_unrounded(tmp_path, small_frames):
    path = tmp_path / "ntsc.avi"
    with VideoSink(path, fps=30000 / 1001, size=(320, 180)) as sink:
        for f in small_frames:
            sink.write(f)
    assert sink.fps == 30000 / 1001 and sink.rate == Fraction(30000, 1001)
    assert cv2.VideoCapture(str(path)).get(cv2.CAP_PROP_FPS) == pytest.approx(29.97, abs=1e-3)
    with open_source(path) as src:
        assert src.fps == 30000 / 1001 and src.frame_count == N
    mp4 = tmp_path / "ntsc.mp4"
    with VideoSink(mp4, fps=30000 / 1001) as sink:
        for f in small_frames:
            sink.write(f)
    with av.open(str(mp4)) as f:
        assert f.streams.video[0].average_rate == Fraction(30000, 1001)
    assert _times(mp4) == pytest.approx([k * 1001 / 30000 for k in range(N)], abs=1e-6)


def test_the_first_encoder_present_is_used(tmp_path, small_frames, monkeypatch):
    from liveheat.outputs import codecs

    av1 = codecs.VIDEO_CODECS["av1"]
    monkeypatch.setitem(
        codecs.VIDEO_CODECS, "av1", dataclasses.replace(av1, encoders=("nosuch", "libsvtav1"))
    )
    with VideoSink(tmp_path / "fallback.mkv", fps=25, codec="av1") as sink:
        sink.write(small_frames[0])
    assert sink.encoder == "libsvtav1"
    assert len(_times(tmp_path / "fallback.mkv")) == 1  # PyAV (dav1d) reads AV1; OpenCV not


def test_no_encoder_fails_before_any_frame_and_leaves_no_file(tmp_path, monkeypatch):
    from liveheat.outputs import codecs

    mjpeg = dataclasses.replace(codecs.VIDEO_CODECS["mjpeg"], encoders=("nosuch", "nosuch2"))
    monkeypatch.setitem(codecs.VIDEO_CODECS, "mjpeg", mjpeg)
    with pytest.raises(LiveheatError, match="has no nosuch or nosuch2 encoder.*doctor"):
        VideoSink(tmp_path / "x.avi", fps=25)
    with pytest.raises(LiveheatError, match="no nosuch"):
        VideoSink(tmp_path / "y.avi", fps=25, size=(320, 180))
    assert list(tmp_path.iterdir()) == []


def test_frames_of_another_size_are_letterboxed(tmp_path, small_frames):
    path = tmp_path / "mixed.avi"
    wide = np.concatenate([small_frames[1]] * 3, axis=1)  # panels: 960x180
    with VideoSink(path, fps=25) as sink:
        sink.write(small_frames[0])  # fixes the size: 320x180
        sink.write(wide)
        sink.write(cv2.cvtColor(small_frames[2], cv2.COLOR_BGR2GRAY))  # gray: converted
    assert sink.size == (320, 180) and sink.resized == 1 and sink.frames_written == 3
    back = read_frames(path)
    assert [b.shape for b in back] == [(180, 320, 3)] * 3
    boxed = back[1]  # 960x180 scaled by 1/3 -> 320x60, centred, black bars above and below
    assert boxed[:50].mean() < 8 and boxed[130:].mean() < 8
    expected = cv2.resize(wide, (320, 60), interpolation=cv2.INTER_AREA)
    assert _mad(boxed[60:120], expected) < 12
    assert back[2].std(axis=2).mean() < 3  # gray stays gray


def test_size_given_up_front(tmp_path, small_frames):
    with VideoSink(tmp_path / "s.mp4", fps=12.5, size=(160, 90)) as sink:
        for f in small_frames[:3]:
            sink.write(f)
    assert sink.resized == 3
    with open_source(tmp_path / "s.mp4") as src:
        assert src.size == (160, 90) and src.fps == 12.5 and src.frame_count == 3


@pytest.mark.parametrize(("ext", "codec"), [(".avi", None), (".webm", None), (".mkv", "mpeg4")])
def test_odd_sizes_are_kept_where_the_codec_allows(tmp_path, small_frames, ext, codec):
    notes = []
    odd = [f[:179, :319] for f in small_frames[:3]]
    with VideoSink(tmp_path / f"odd{ext}", fps=25, codec=codec, notice=notes.append) as sink:
        for f in odd:
            sink.write(f)
    assert sink.padded is None and notes == []
    back = read_frames(tmp_path / f"odd{ext}")
    assert [b.shape for b in back] == [(179, 319, 3)] * 3
    assert _mad(back[1], odd[1]) < 6


def test_odd_sizes_are_padded_for_h264_and_said_once(tmp_path, small_frames):
    notes = []
    odd = [f[:179, :319] for f in small_frames[:3]]
    with VideoSink(tmp_path / "odd.mp4", fps=25, notice=notes.append) as sink:
        for f in odd:
            sink.write(f)
    assert sink.size == (319, 179) and sink.padded == (320, 180)
    assert len(notes) == 1 and "319x179 written as 320x180" in notes[0]
    back = read_frames(tmp_path / "odd.mp4")
    assert [b.shape for b in back] == [(180, 320, 3)] * 3
    assert _mad(back[1][:179, :319], odd[1]) < 6  # the picture where it was: padded bottom/right
    assert _mad(back[1][179, :319], odd[1][178]) < 8  # the edge row repeated


@pytest.mark.parametrize(
    "name, kwargs, message",
    [
        ("out.xyz", {}, r"expected an \.mp4 or .* file name"),
        ("out", {}, r"expected an \.mp4 or"),
        ("no/such/dir/out.mp4", {}, "folder .* does not exist"),
        ("out.mp4", {"fps": 0}, "fps=0"),
        ("out.mp4", {"fps": float("nan")}, "fps=nan"),
        ("out.mp4", {"size": (0, 10)}, "size must be positive"),
        ("out.webm", {"codec": "h264"}, r"cannot write h264 into \.webm: it holds vp9, av1"),
        ("out.mp4", {"codec": "theora"}, "unknown codec 'theora'"),
        ("out.mp4", {"crf": 99}, r"--crf 99 does not fit h264: expected an integer in \[0, 51\]"),
        ("out.mp4", {"encoder_preset": "warp"}, "--encoder-preset 'warp' does not fit h264"),
        ("out.avi", {"encoder_preset": "fast"}, "mjpeg has no encoder presets"),
        ("out.mp4", {"fourcc": "ZZZZ"}, "unknown fourcc 'ZZZZ'"),
        ("out.mp4", {"segment": 0.5}, "segment must be at least 1 second"),
    ],
)
def test_bad_video_paths_and_settings_fail_clearly(tmp_path, name, kwargs, message):
    kwargs = {"fps": 25, **kwargs}
    with pytest.raises(LiveheatError, match=message):
        VideoSink(tmp_path / name, **kwargs)
    assert list(tmp_path.iterdir()) == []


def test_the_older_fourcc_argument_still_names_a_codec(tmp_path, small_frames):
    with VideoSink(tmp_path / "old.mkv", fps=25, fourcc="mp4v") as sink:
        sink.write(small_frames[0])
    assert (sink.codec, sink.fourcc) == ("mpeg4", "mp4v")


def test_a_folder_is_not_a_video_path(tmp_path):
    (tmp_path / "x.mp4").mkdir()
    with pytest.raises(LiveheatError, match="it is a folder"):
        VideoSink(tmp_path / "x.mp4", fps=25)


def test_closing_without_frames_leaves_no_file_and_close_is_idempotent(tmp_path, small_frames):
    empty = VideoSink(tmp_path / "empty.mp4", fps=25, size=(320, 180))
    assert empty.tmp_path.parent == tmp_path  # where the frames would go
    assert list(tmp_path.iterdir()) == []  # nothing is made before the first frame
    empty.close()
    empty.close()
    assert list(tmp_path.iterdir()) == [] and empty.files == []
    sink = VideoSink(tmp_path / "one.avi", fps=25)
    sink.write(small_frames[0])
    assert sink.tmp_path.exists() and not (tmp_path / "one.avi").exists()
    sink.close()
    sink.close()
    with pytest.raises(LiveheatError, match="already closed"):
        sink.write(small_frames[1])
    assert len(read_frames(tmp_path / "one.avi")) == 1


def test_an_existing_file_is_replaced_only_when_frames_were_written(tmp_path, small_frames):
    target = tmp_path / "old.mp4"
    with VideoSink(target, fps=25) as sink:
        for f in small_frames[:2]:
            sink.write(f)
    old = target.read_bytes()
    # a run that fails before its first frame: the old recording is untouched
    with pytest.raises(RuntimeError):
        with VideoSink(target, fps=25, size=(320, 180)) as sink:
            raise RuntimeError("the run failed")
    assert target.read_bytes() == old and [p.name for p in tmp_path.iterdir()] == ["old.mp4"]
    # while recording, the old file stays as it was; close() swaps the new one in
    sink = VideoSink(target, fps=25)
    for f in small_frames[:5]:
        sink.write(f)
    assert target.read_bytes() == old and sink.tmp_path.name.startswith(".old.")
    sink.close()
    assert len(read_frames(target)) == 5 and not sink.tmp_path.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["old.mp4"]


def test_live_frames_are_placed_on_the_grid_in_avi(tmp_path, small_frames):
    from types import SimpleNamespace

    def at(t):
        return SimpleNamespace(timestamp=t)

    path = tmp_path / "timed.avi"
    # AVI has one frame rate: frames go into slots. 10 fps: frames at 0 s, 0.1 s, then 0.4 s
    # (two slots missed: a slow camera), 0.42 s (same slot again: kept), 0.43 s (two early:
    # left out), then 10.4 s (a 10 s gap: the clock restarts, no 100 repeats)
    with VideoSink(path, fps=10, by_timestamp=True) as sink:
        for image, t in zip(
            small_frames[:6], (100.0, 100.1, 100.4, 100.42, 100.43, 110.4), strict=True
        ):
            sink.write(image, at(t))
    assert (sink.frames_written, sink.repeated, sink.skipped) == (7, 2, 1)
    back = read_frames(path)
    assert len(back) == 7
    # file slots: f0 f1 f1 f1 f2 f3 f5 -- the repeats are copies of the frame before the gap
    expected = [0, 1, 1, 1, 2, 3, 5]
    for got, k in zip(back, expected, strict=True):
        mads = [_mad(got, small_frames[j]) for j in range(6)]
        assert int(np.argmin(mads)) == k
    # recorded sources (the default) ignore timestamps: one frame in, one frame out
    with VideoSink(tmp_path / "plain.avi", fps=10) as plain:
        for image, t in zip(small_frames[:3], (0.0, 0.5, 0.9), strict=True):
            plain.write(image, at(t))
    assert (plain.frames_written, plain.repeated) == (3, 0)


@pytest.mark.parametrize("ext", [".mp4", ".mkv"])
def test_live_frames_keep_their_capture_times(tmp_path, small_frames, ext):
    from types import SimpleNamespace

    path = tmp_path / f"timed{ext}"
    times = (100.0, 100.1, 100.4, 100.42, 100.43, 110.4)  # a 10 s gap: the clock restarts
    with VideoSink(path, fps=10, by_timestamp=True) as sink:
        for image, t in zip(small_frames[:6], times, strict=True):
            sink.write(image, SimpleNamespace(timestamp=t))
    assert (sink.frames_written, sink.repeated, sink.skipped) == (6, 0, 0)
    assert sink.fragmented == (ext == ".mp4")
    expected = [0.0, 0.1, 0.4, 0.42, 0.43, 0.53]  # after the gap: one frame period later
    assert _times(path) == pytest.approx(expected, abs=1.5e-3)
    back = read_frames(path)
    assert [int(np.argmin([_mad(b, f) for f in small_frames[:6]])) for b in back] == list(range(6))


def test_frames_keep_their_source_presentation_times(tmp_path, small_frames):
    """A Frame with pts/time_base (a file read through PyAV) keeps its time in the file."""
    from liveheat.sources.base import Frame

    tb = Fraction(1, 12800)
    pts = [0, 512, 1024, 2560, 2600, 6400]  # variable gaps
    path = tmp_path / "vfr.mp4"
    with VideoSink(path, fps=25) as sink:
        for k, (image, p) in enumerate(zip(small_frames, pts, strict=False)):
            sink.write(image, Frame(image, k, float(p * tb), 25.0, pts=p, time_base=tb))
    assert _times(path) == pytest.approx([float(p * tb) for p in pts], abs=1e-6)


def test_non_image_input_is_a_clear_error(tmp_path):
    with VideoSink(tmp_path / "f.avi", fps=25) as sink:
        with pytest.raises(LiveheatError, match="expected a uint8 BGR frame"):
            sink.write(np.zeros((10, 10, 3), np.float32))
    assert not (tmp_path / "f.avi").exists()


# ------------------------------------------------------------------------------- display check


# opencv-python-headless (which clobbers opencv-python's cv2 when both are installed) has no GUI
# at all: that reason comes first, whatever the display
_HEADLESS_WHY = "OpenCV has no GUI backend (a headless build)"


def _headless() -> bool:
    from liveheat._common.system import gui_backend

    return gui_backend() == "none"


def test_no_display_is_reported_not_crashed(monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    ok, why = display_available()
    assert not ok
    want = _HEADLESS_WHY if _headless() else "no display (DISPLAY is not set)"
    assert why.startswith(want)


def test_unreachable_display_is_reported(monkeypatch):
    monkeypatch.setenv("DISPLAY", ":987")  # nothing listens there
    ok, why = display_available()
    assert not ok
    want = _HEADLESS_WHY if _headless() else "cannot connect to display ':987'"
    assert want in why


def test_wayland_without_xwayland_is_reported_for_qt(monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.setenv("WAYLAND_DISPLAY", "wayland-0")
    ok, why = display_available()
    if "QT" in cv2.getBuildInformation().split("GUI:")[1].split("\n")[0]:
        assert not ok and "DISPLAY is not set" in why
    else:
        assert why  # another backend: a one-line reason either way


def test_window_without_display_raises_a_clear_error(monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    reason = "OpenCV has no GUI backend" if _headless() else "no display"
    with pytest.raises(LiveheatError, match=f"cannot open a window: {reason}.*--no-show"):
        Window(Settings())


# --------------------------------------------------------------------------- keys and Controls


def test_key_table_is_complete_and_unambiguous():
    codes = [c for k in KEYS for c in k.keys]
    assert len(codes) == len(set(codes))
    wanted = {"q": "quit", "\x1b": "quit", " ": "pause", "m": "method", "c": "colormap",
              "[": "previous", "]": "next", "+": "alpha_up", "=": "alpha_up",
              "-": "alpha_down", "p": "panels", "s": "screenshot", "h": "help"}  # fmt: skip
    by_code = {c: k.action for k in KEYS for c in k.keys}
    assert {ch: by_code[ord(ch)] for ch in wanted} == wanted


def test_help_overlay_is_generated_from_the_table():
    lines = help_lines()
    assert len(lines) == len(KEYS) + 1
    for key, line in zip(KEYS, lines[1:], strict=True):
        assert line.startswith(key.label) and line.endswith(key.help)


def test_controls_change_settings():
    s = Settings()
    c = Controls(s)
    assert c.handle(ord("c")) is None and s.colormap == COLORMAP_CYCLE[1]
    for _ in range(len(COLORMAP_CYCLE) - 1):
        c.handle(ord("c"))
    assert s.colormap == COLORMAP_CYCLE[0]  # wraps around
    c.handle(ord("+"))
    c.handle(ord("="))
    assert s.alpha == 0.7
    for _ in range(20):
        c.handle(ord("-"))
    assert s.alpha == 0.0  # clamped
    c.handle(ord("p"))
    assert s.panels is True
    c.handle(ord("p"))
    assert s.panels is False
    c.handle(ord(" "))
    assert s.paused is True and c.message == "paused"
    c.handle(ord(" "))
    assert s.paused is False
    seen = []
    for _ in METHOD_CYCLE:
        c.handle(ord("m"))
        seen.append(s.method)
    assert seen == [*METHOD_CYCLE[1:], METHOD_CYCLE[0]]
    assert c.handle(ord("P")) is None and s.panels is True  # caps lock does not matter
    assert [c.handle(k) for k in (ord("q"), 27, ord("s"), ord("h"), -1, ord("x"))] == [
        "quit", "quit", "screenshot", "help", None, None,
    ]  # fmt: skip


def test_brackets_walk_channels_and_classes_with_real_features(small_frames):
    from liveheat.model.backbone import Backbone

    features = Backbone("int8", threads=1)(small_frames[0])
    channels = features.maps.shape[0]
    classes = len(features.labels)
    top1 = features.top(1)[0][0]
    s = Settings()
    c = Controls(s)
    c.handle(ord("]"), features=features)  # class mode: from top-1 to the next class
    assert s.target == (top1 + 1) % classes
    c.handle(ord("["), features=features)
    c.handle(ord("["), features=features)
    assert s.target == (top1 - 1) % classes
    s.update(target=0)
    c.handle(ord("["), features=features)
    assert s.target == classes - 1  # wraps
    s.update(method="channel:0")
    c.features = features  # the pipeline may also just set the newest Features
    c.handle(ord("["))
    assert s.method == f"channel:{channels - 1}"
    c.handle(ord("]"))
    c.handle(ord("]"))
    assert s.method == "channel:1"


def test_brackets_without_features_stay_in_range():
    s = Settings(method="channel:0")
    c = Controls(s)
    c.handle(ord("["))
    assert s.method == "channel:0"
    c.handle(ord("]"))
    assert s.method == "channel:1"
    s.update(method="cam")
    c.handle(ord("]"))
    assert s.target == 1


# ------------------------------------------------------------------------------- HUD and help


def test_hud_draws_legible_text_on_a_dark_box(small_frames):
    bright = np.full((360, 640, 3), 230, np.uint8)
    out = draw_hud(bright, ["top: 281 tabby cat 0.53", "cam  fps 24.8  age 40 ms"])
    assert out is bright  # in place
    changed = np.argwhere((bright != 230).any(axis=2))
    (y0, x0), (y1, x1) = changed.min(axis=0), changed.max(axis=0)
    assert (y0, x0) == (0, 0) and x1 > 100 and y1 > 20  # a box in the top-left corner
    box = bright[: y1 + 1, : x1 + 1]
    assert (box == 230).all(axis=2).mean() < 0.01  # all of it darkened or written on
    assert (box < 100).all(axis=2).mean() > 0.5  # dark backing ...
    assert (box.min(axis=2) > 180).sum() > 100  # ... with white text on it
    assert bright[300:, 400:].min() == 230  # the rest untouched
    frame = small_frames[0].copy()
    before = frame.copy()
    draw_hud(frame, ["x"])
    assert not np.array_equal(frame, before)


def test_hud_colour_bar_uses_the_colormap():
    for cmap in ("jet", "viridis"):
        img = np.full((400, 600, 3), 128, np.uint8)
        draw_hud(img, [], colorbar=(cmap, 0.0, 1.0))
        lut = resolve_colormap(cmap).reshape(256, 3).astype(int)
        right = img[:, 500:]
        changed = np.argwhere(np.abs(right.astype(int) - 128).sum(axis=2) > 0)
        assert len(changed) > 0
        rows = changed[:, 0]
        top, bottom = rows.min(), rows.max()
        assert bottom - top >= 190  # half the height
        # the bar's top is the colormap's hot end, its bottom the cold end
        top_px = [right[top + 2, x] for x in range(right.shape[1])]
        bottom_px = [right[bottom - 2, x] for x in range(right.shape[1])]
        assert min(np.abs(p - lut[255]).sum() for p in top_px) < 30
        assert min(np.abs(p - lut[0]).sum() for p in bottom_px) < 30
    with pytest.raises(LiveheatError, match="colormap"):
        draw_hud(np.zeros((100, 100, 3), np.uint8), [], colorbar=("jt", 0, 1))


def test_help_overlay_darkens_the_centre_and_writes_text():
    img = np.full((480, 640, 3), 250, np.uint8)
    draw_help(img)
    centre = img[140:340, 200:440]
    assert (centre < 100).mean() > 0.5 and (centre > 200).any()
    assert img[0, 0].tolist() == [250, 250, 250]


def test_help_shrinks_to_fit_a_short_wide_image():
    from liveheat.outputs.keys import draw_help

    img = np.full((280, 1600, 3), 100, np.uint8)
    draw_help(img)
    centre = img[:, 700:900]
    dark = (centre < 100).all(axis=2)  # the box darkens to a quarter, the text is white
    assert dark.any(axis=1).all()  # the box spans every row...
    text_rows = np.where((centre > 200).all(axis=2).any(axis=1))[0]
    assert text_rows.max() < 280 and text_rows.max() > 240  # ...and the last line is inside it
    assert (img[:, :500] == 100).all()  # and stays centred, narrow enough to leave the sides


def test_window_and_hud_text_scale_up_for_wide_panels():
    from liveheat.draw.hud import _text_scale

    assert _text_scale(np.zeros((720, 1280, 3), np.uint8))[0] == pytest.approx(0.6)
    assert _text_scale(np.zeros((720, 3 * 1280 + 80, 3), np.uint8))[0] > 1.5
