"""Sources: the bundled clip, image sequences, a 29.97 fps file, truncated files, an MJPEG camera
stand-in over HTTP, live pacing with drops, and clear errors for what cannot be opened.
(Video files in depth, through PyAV: tests/test_file_reader.py.)"""

from __future__ import annotations

import logging
import socket
import subprocess
import sys
import threading
import time

import cv2
import numpy as np
import pytest

from liveheat.errors import LiveheatError
from liveheat.sources.base import Frame, exact_fps
from liveheat.sources.source import open_source
from tests.helpers.mjpeg_server import MjpegServer, load_frames
from tests.helpers.videos import (
    CLIP,
    CLIP_FPS,
    CLIP_FRAMES,
    CLIP_SIZE,
    faststart,
    read_frames,
    truncated_copy,
    write_image_sequence,
    write_video,
)


@pytest.fixture(scope="module")
def small_frames() -> list[np.ndarray]:
    """The first 12 frames of the bundled clip at 320x180 (fast to write and read)."""
    return load_frames(CLIP, size=(320, 180), limit=12)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _mad(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


# ------------------------------------------------------------------------------------ recorded


def test_clip_hands_over_every_frame_in_order_with_source_time():
    with open_source(CLIP) as src:
        assert (src.live, src.kind, src.size, src.fps) == (False, "file", CLIP_SIZE, CLIP_FPS)
        assert src.frame_count == CLIP_FRAMES
        frames = list(src)
    assert [f.index for f in frames] == list(range(CLIP_FRAMES))
    assert [f.timestamp for f in frames] == [i / 25.0 for i in range(CLIP_FRAMES)]
    assert all(f.fps == 25.0 and f.image.shape == (720, 1280, 3) for f in frames)
    assert frames[0].image.dtype == np.uint8
    assert src.dropped == 0 and src.error is None
    direct = read_frames(CLIP)
    for i in (0, 57, CLIP_FRAMES - 1):  # the pixels OpenCV decodes (the same FFmpeg)
        assert _mad(frames[i].image, direct[i]) < 2
    assert not np.array_equal(frames[0].image, frames[-1].image)


def test_fractional_fps_is_kept_exact(tmp_path, small_frames):
    path = write_video(tmp_path / "ntsc.mp4", small_frames, fps=30000 / 1001)
    assert abs(cv2.VideoCapture(str(path)).get(cv2.CAP_PROP_FPS) - 29.97) < 1e-3
    with open_source(path) as src:
        frames = list(src)
    assert src.fps == 30000 / 1001  # not 29, not 30, not 29.97
    assert len(frames) == len(small_frames)
    assert all(f.fps == 30000 / 1001 for f in frames)
    # each frame keeps the file's own time: OpenCV stores 29.97 rounded (400/11988 s a
    # frame), within a microsecond of 1001/30000
    step = frames[1].pts - frames[0].pts
    assert [f.pts for f in frames] == [frames[0].pts + step * i for i in range(len(frames))]
    assert frames[7].timestamp == float((frames[7].pts - frames[0].pts) * frames[7].time_base)
    assert frames[7].timestamp == pytest.approx(7 * 1001 / 30000, abs=1e-6)


def test_exact_fps_snaps_ntsc_rates_only():
    assert exact_fps(23.976) == 24000 / 1001
    assert exact_fps(59.94) == 60000 / 1001
    assert exact_fps(14.985) == exact_fps(14.99) == 15000 / 1001
    assert exact_fps(23.98) == exact_fps(23.97) == 24000 / 1001  # rounded or cut to 2 decimals
    assert exact_fps(25.0) == 25.0 and exact_fps(12.5) == 12.5
    assert exact_fps(15.0) == 15.0 and exact_fps(24.0) == 24.0 and exact_fps(30.0) == 30.0
    assert exact_fps(0.0) is None and exact_fps(-1) is None and exact_fps(float("inf")) is None


def test_truncated_mp4_gives_the_readable_frames_then_an_error(tmp_path):
    whole = faststart(CLIP, tmp_path / "faststart.mp4")  # index first, as a streamed file would be
    assert len(read_frames(whole)) == CLIP_FRAMES
    cut = truncated_copy(whole, tmp_path / "cut.mp4", keep=0.5)
    with open_source(cut) as src:
        frames = list(src)
    assert 0 < len(frames) < CLIP_FRAMES
    assert src.frame_count == CLIP_FRAMES
    assert src.error is not None
    assert f"read {len(frames)} of {CLIP_FRAMES} frames" in src.error
    assert "truncated" in src.error
    original = read_frames(CLIP, limit=len(frames))
    for i in (0, len(frames) // 2):  # what was readable is the real video
        assert _mad(frames[i].image, original[i]) < 2


def test_mp4_cut_before_its_index_fails_clearly(tmp_path):
    cut = truncated_copy(CLIP, tmp_path / "cut.mp4", keep=0.6)  # moov is at the end: lost
    with pytest.raises(LiveheatError, match="cannot open video file .*cut.mp4"):
        open_source(cut)


def test_loop_restarts_and_indices_keep_increasing(tmp_path, small_frames):
    write_image_sequence(tmp_path, small_frames[:3])
    with open_source(tmp_path, loop=True) as src:
        assert src.frame_count is None
        frames = [src.read() for _ in range(7)]
    assert [f.index for f in frames] == list(range(7))
    assert np.array_equal(frames[3].image, frames[0].image)
    assert np.array_equal(frames[5].image, frames[2].image)
    assert not np.array_equal(frames[1].image, frames[0].image)


# ------------------------------------------------------------------------------ image sequences


def test_image_folder_is_sorted_naturally_with_fps_25(tmp_path, small_frames):
    # frame10.png sorts before frame2.png as text; the source must put it after frame9
    write_image_sequence(tmp_path, small_frames, pattern="frame{}")
    with open_source(tmp_path) as src:
        assert (src.kind, src.fps, src.size, src.frame_count) == ("images", 25.0, (320, 180), 12)
        frames = list(src)
    assert len(frames) == len(small_frames)
    for frame, original in zip(frames, small_frames, strict=True):
        assert np.array_equal(frame.image, original)  # PNG is lossless
    assert frames[4].timestamp == 4 / 25.0


def test_image_glob_with_fps_argument(tmp_path, small_frames):
    write_image_sequence(tmp_path, small_frames[:5], ext=".jpg", pattern="img_{:03d}")
    (tmp_path / "notes.txt").write_text("not an image")
    with open_source(str(tmp_path / "img_*.jpg"), fps=10) as src:
        frames = list(src)
    assert src.fps == 10.0 and len(frames) == 5
    assert frames[3].timestamp == pytest.approx(0.3)
    assert _mad(frames[2].image, small_frames[2]) < 4  # JPEG: close, not equal


def test_unreadable_image_is_skipped_with_a_warning(tmp_path, small_frames, caplog):
    write_image_sequence(tmp_path, small_frames[:4], pattern="f{}")
    (tmp_path / "f2.png").write_bytes(b"\x89PNG garbage, cut short")
    with caplog.at_level(logging.WARNING, logger="liveheat.sources"):
        with open_source(tmp_path) as src:
            frames = list(src)
    assert len(frames) == 3 and [f.index for f in frames] == [0, 1, 2]
    assert np.array_equal(frames[2].image, small_frames[3])
    assert [p.endswith("f2.png") for p in src.skipped] == [True]
    assert "skipping unreadable image" in caplog.text and "f2.png" in caplog.text
    assert src.error is None


def test_images_of_another_size_are_resized_to_the_first(tmp_path, small_frames):
    write_image_sequence(tmp_path, small_frames[:2], pattern="a{}")
    cv2.imwrite(str(tmp_path / "a2.png"), cv2.resize(small_frames[2], (640, 360)))
    with open_source(tmp_path) as src:
        shapes = [f.image.shape for f in src]
    assert shapes == [(180, 320, 3)] * 3


def test_image_folder_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(LiveheatError, match="has no images"):
        open_source(tmp_path / "empty")
    with pytest.raises(LiveheatError, match="no images match"):
        open_source(str(tmp_path / "*.png"))
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "x.png").write_bytes(b"nope")
    with pytest.raises(LiveheatError, match="no readable image"):
        open_source(tmp_path / "bad")


# ------------------------------------------------------------------------------- live policies


def test_live_file_drops_stale_frames_when_the_consumer_is_slow():
    with open_source(CLIP, live=True) as src:
        assert src.live and src.frame_count is None and src.fps == 25.0
        period = 1 / src.fps
        got: list[Frame] = []
        newest_gap = []
        for _ in range(6):
            frame = src.read()
            assert frame is not None
            newest_gap.append(src.captured - 1 - frame.index)  # 0: the newest captured frame
            got.append(frame)
            time.sleep(3 * period)  # a consumer three times slower than the camera
    indices = [f.index for f in got]
    assert indices == sorted(set(indices))  # strictly increasing
    assert src.dropped > 0
    assert max(np.diff(indices)) >= 2  # skipped stale frames
    assert max(newest_gap) <= 1  # what it hands over is (nearly) the newest frame
    assert all(f.timestamp <= time.monotonic() for f in got)


def test_live_file_fast_consumer_misses_nothing_it_could_see():
    with open_source(CLIP, live=True) as src:
        frames = [src.read() for _ in range(8)]
    indices = [f.index for f in frames]
    assert indices == sorted(set(indices))
    # paced at 25 fps: capture timestamps are about a period apart, never all at once
    span = frames[-1].timestamp - frames[0].timestamp
    assert span >= (indices[-1] - indices[0]) * 0.5 / 25


def test_live_source_ends_at_the_end_of_a_file(tmp_path, small_frames):
    write_image_sequence(tmp_path, small_frames[:4])
    with open_source(tmp_path, live=True, fps=100) as src:
        frames = list(src)
    assert 1 <= len(frames) <= 4 and src.error is None
    assert len(frames) + src.dropped == src.captured == 4


# --------------------------------------------------------------------------------- MJPEG server


def test_mjpeg_stream_is_live_and_newest_only():
    with MjpegServer(CLIP, fps=20, size=(320, 180), limit=40) as srv:
        served = load_frames(CLIP, size=(320, 180), limit=40)
        with open_source(srv.url) as src:
            assert (src.live, src.kind, src.size, src.fps) == (True, "stream", (320, 180), None)
            first = src.read()
            time.sleep(0.4)  # 8 frames arrive meanwhile; only the newest is handed over
            second = src.read()
            third = src.read()
        for frame in (first, second, third):  # each is the served frame it claims to be
            mads = [_mad(frame.image, f) for f in served]
            assert int(np.argmin(mads)) == frame.index % len(served)
            assert min(mads) < 8 < max(mads)  # JPEG round trip: close, not equal
        assert second.index - first.index >= 3
        assert third.index > second.index
        assert src.dropped > 0
        assert srv.connections == 1


def test_stream_reconnects_after_the_server_drops_it():
    with MjpegServer(CLIP, fps=25, size=(160, 90), limit=20) as srv:
        with open_source(srv.url, reconnect_timeout=10) as src:
            assert src.read() is not None
            srv.disconnect()
            frames = [src.read() for _ in range(15)]
            assert all(f is not None for f in frames)
            assert src.reconnects >= 1 and srv.connections >= 2
            assert src.error is None


def test_stream_gives_up_after_the_reconnect_timeout():
    srv = MjpegServer(CLIP, fps=25, size=(160, 90), limit=10)
    src = open_source(srv.url, reconnect_timeout=1.0, read_timeout=1.0)
    try:
        assert src.read() is not None
        srv.close()
        leftovers = list(src)  # frames already buffered, then the end
        assert len(leftovers) < 30
        assert src.error is not None and "not back within 1 s" in src.error
    finally:
        src.close()
        srv.close()


def _drain(src, seconds: float) -> list:
    """Frames read from a live source for `seconds` (fewer if it ends)."""
    frames, end = [], time.monotonic() + seconds
    while time.monotonic() < end:
        frame = src.read()
        if frame is None:
            break
        frames.append(frame)
    return frames


def test_stream_that_drops_after_a_few_frames_is_not_reconnected_in_a_storm():
    # accepts, sends 5 frames, closes: every reconnect "succeeds", none stays up
    with MjpegServer(CLIP, fps=50, size=(160, 90), limit=5, loop=False) as srv:
        with open_source(srv.url, reconnect_timeout=30) as src:
            frames = _drain(src, 3.0)
            assert len(frames) >= 5 and src.error is None  # still trying: within its 30 s
            assert 3 <= srv.connections < 20  # back-off kept: ~0, 0.25, 0.5, 1, 2 s apart
            assert src.reconnects == srv.connections - 1


def test_stream_that_keeps_dropping_ends_with_an_error():
    with MjpegServer(CLIP, fps=50, size=(160, 90), limit=5, loop=False) as srv:
        start = time.monotonic()
        with open_source(srv.url, reconnect_timeout=1.5) as src:
            frames = _drain(src, 20.0)
        took = time.monotonic() - start
        assert frames and took < 8.0
        assert src.error is not None and "keeps dropping" in src.error, src.error
        assert srv.connections < 10


def test_stream_back_at_another_resolution_keeps_the_first_size():
    small = load_frames(CLIP, size=(160, 90), limit=10)
    big = load_frames(CLIP, size=(320, 180), limit=10)
    with MjpegServer(small, fps=25) as srv:
        with open_source(srv.url, reconnect_timeout=10) as src:
            assert src.read().image.shape == (90, 160, 3)
            srv.jpegs = [cv2.imencode(".jpg", f)[1].tobytes() for f in big]  # camera reconfigured
            srv.disconnect()
            frames = [src.read() for _ in range(12)]
            assert src.reconnects >= 1 and src.size == (160, 90)
    assert all(f is not None and f.image.shape == (90, 160, 3) for f in frames)
    last = frames[-1].image  # a served big frame scaled down, not garbage
    mads = [_mad(last, cv2.resize(f, (160, 90), interpolation=cv2.INTER_AREA)) for f in big]
    assert min(mads) < 8


def test_close_does_not_wait_for_a_recorded_read_stuck_in_another_thread():
    with MjpegServer(CLIP, fps=25, size=(160, 90), limit=10) as srv:
        src = open_source(srv.url, live=False, read_timeout=3.0)
        assert src.read() is not None
        srv.pause()  # the next reads drain what is buffered, then block in the decoder
        reader = threading.Thread(target=lambda: list(src), daemon=True)
        reader.start()
        time.sleep(0.5)
        assert reader.is_alive()
        start = time.monotonic()
        src.close(timeout=0.3)
        assert time.monotonic() - start < 1.0  # not the 3 s read timeout
        reader.join(10)
        assert not reader.is_alive()
        deadline = time.monotonic() + 5
        while src._reader._cap is not None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert src._reader._cap is None  # released once the stuck read returned
        assert src.read() is None
        srv.resume()


def test_close_while_the_consumer_is_blocked_returns():
    with MjpegServer(CLIP, fps=25, size=(160, 90), limit=10) as srv:
        src = open_source(srv.url, read_timeout=2.0)
        assert src.read() is not None
        srv.pause()  # the stream stalls: the capture thread blocks in the decoder
        time.sleep(0.2)
        while src._slot is not None:  # drain what arrived before the stall
            src.read()
        result = []
        consumer = threading.Thread(target=lambda: result.append(src.read()), daemon=True)
        consumer.start()
        time.sleep(0.2)
        assert consumer.is_alive()  # blocked: no newer frame
        closer = threading.Thread(target=src.close, daemon=True)
        closer.start()
        closer.join(10)
        consumer.join(10)
        assert not closer.is_alive() and not consumer.is_alive()
        assert result == [None]
        srv.resume()


# --------------------------------------------------------------------------------------- errors


@pytest.mark.parametrize("spec", [0, "0", "7"])
def test_missing_camera_fails_fast_and_clearly(spec):
    start = time.monotonic()
    with pytest.raises(LiveheatError, match=r"camera \d+ not found or busy"):
        open_source(spec)
    assert time.monotonic() - start < 3.0


@pytest.mark.parametrize("spec", [99999999999, "99999999999", 2**31, -1])
def test_camera_index_beyond_a_c_int_is_a_clear_error(spec):
    with pytest.raises(LiveheatError, match=r"camera index -?\d+ is out of range.*0 to 2147483647"):
        open_source(spec)


def test_opencv_refusing_a_capture_argument_is_a_liveheat_error():
    from liveheat.sources.capture import _CaptureReader

    with pytest.raises(LiveheatError, match=r"cannot open camera 9: OpenCV refused it \(.*Bad arg"):
        _CaptureReader(
            2**40, kind="camera", name="camera 9", open_timeout=3, reconnect_timeout=1,
            read_timeout=1, fps=None,
        )  # fmt: skip


def test_cli_run_with_a_huge_camera_index_exits_2_with_one_line(tmp_path):
    cmd = [sys.executable, "-m", "liveheat", "run", "99999999999", "--no-show"]
    r = subprocess.run(
        [*cmd, "-o", str(tmp_path / "out.mp4")], capture_output=True, text=True, timeout=120
    )
    assert r.returncode == 2, r.stderr
    assert r.stderr.startswith("liveheat: error: camera index 99999999999 is out of range")
    assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr


def test_nonexistent_path_is_a_clear_error(tmp_path):
    with pytest.raises(LiveheatError, match="no such file or folder: .*nope.mp4.*camera index"):
        open_source(tmp_path / "nope.mp4")


def test_garbage_file_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"this is not a video " * 100)
    with pytest.raises(LiveheatError, match="cannot open video file"):
        open_source(bad)


@pytest.mark.parametrize(
    "url, message",
    [
        ("http://127.0.0.1:{port}/stream.mjpg", "cannot open stream"),
        ("rtsp://127.0.0.1:{port}/live", "cannot open stream"),
        ("gopher://example.invalid/x", "unsupported URL scheme 'gopher://'"),
    ],
)
def test_garbage_urls_are_clear_errors(url, message):
    with pytest.raises(LiveheatError, match=message):
        open_source(url.format(port=_closed_port()), open_timeout=2)


def test_url_that_never_answers_fails_within_open_timeout():
    with socket.socket() as silent:  # accepts TCP connections (backlog) and never says a word
        silent.bind(("127.0.0.1", 0))
        silent.listen(4)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/stream.mjpg"
        start = time.monotonic()
        with pytest.raises(LiveheatError):
            open_source(url, open_timeout=1.0)
        assert time.monotonic() - start < 3.0


def test_password_is_not_shown_in_names_or_errors():
    port = _closed_port()
    with pytest.raises(LiveheatError) as info:
        open_source(f"rtsp://admin:hunter2@127.0.0.1:{port}/x", open_timeout=1)
    assert "hunter2" not in str(info.value) and "admin:***@" in str(info.value)


@pytest.mark.parametrize("spec", ["", "   ", None, 1.5])
def test_nonsense_specs_are_clear_errors(spec):
    with pytest.raises(LiveheatError):
        open_source(spec)


def test_read_after_close_is_none_and_close_is_idempotent():
    src = open_source(CLIP)
    assert src.read().index == 0
    src.close()
    src.close()
    assert src.read() is None
    live = open_source(CLIP, live=True)
    assert live.read() is not None
    live.close()
    live.close()
    assert live.read() is None
    assert not live._thread.is_alive()


def test_camera_that_disconnects_ends_with_an_error():
    # no camera here: the MJPEG server stands in for one, read through the camera code path
    from liveheat.sources.capture import _CaptureReader
    from liveheat.sources.source import Source

    with MjpegServer(CLIP, fps=25, size=(160, 90), limit=10) as srv:
        reader = _CaptureReader(
            srv.url, kind="camera", name="camera 9", open_timeout=3, reconnect_timeout=30,
            read_timeout=2, fps=None,
        )  # fmt: skip
        src = Source(reader, live=True)
        assert src.read() is not None
        srv.close()  # unplugged
        rest = list(src)
    assert len(rest) < 30
    assert src.error == "camera 9 stopped delivering frames (disconnected?)"
    src._thread.join(5)
    assert not src._thread.is_alive()
    src.close()


def test_camera_requests_are_applied_and_what_is_granted_is_said_once(caplog):
    # no camera here: a real video file opened by the camera reader stands in for one (OpenCV
    # takes the requests and grants none of them, as a camera without those modes would)
    import logging

    from liveheat.sources.capture import _CaptureReader, granted

    want = {"size": (640, 480), "fps": 60.0, "fourcc": "MJPG", "backend": "any"}
    with caplog.at_level(logging.WARNING, logger="liveheat.sources"):
        reader = _CaptureReader(
            str(CLIP), kind="camera", name="camera 'stand-in'", open_timeout=10,
            reconnect_timeout=1, read_timeout=1, fps=None, camera=want,
        )  # fmt: skip
        frames = [reader.read() for _ in range(3)]
    try:
        assert all(f is not None and f.shape == (720, 1280, 3) for f in frames)
        lines = [r.getMessage() for r in caplog.records]
        fourcc = granted(reader._cap, {"fourcc": "MJPG"}, (1280, 720)).split(" (")[0]
        assert fourcc == "h264"  # the stand-in's own format, read back
        assert lines == [
            "liveheat: camera 'stand-in' gives 1280x720, 25 fps, h264 (asked 640x480, 60 fps, MJPG)"
        ], lines
        # granted in full: nothing to say
        assert granted(reader._cap, {"size": (1280, 720), "fps": 25.0}, (1280, 720)) is None
        assert granted(reader._cap, {}, (1280, 720)) is None
    finally:
        reader.close()
