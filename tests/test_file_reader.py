"""Video files through PyAV: each frame's own time (29.97 kept as 30000/1001, variable frame
rates kept), the source's sound described for the writer, damaged frames skipped and counted,
rotated phone videos turned upright, and the bundled clip decoded as OpenCV decodes it.

Every clip is made here with PyAV (the FFmpeg that reads it), from frames of the bundled clip.
"""

from __future__ import annotations

import struct
import time
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from liveheat.errors import LiveheatError
from liveheat.sources import BUNDLED_CLIP, open_source
from liveheat.sources.base import AudioInfo
from liveheat.sources.file import MAX_BAD_RUN
from tests.helpers.mjpeg_server import load_frames
from tests.helpers.videos import CLIP_FPS, CLIP_FRAMES, CLIP_SIZE, read_frames

SIZE = (160, 90)


@pytest.fixture(scope="module")
def frames() -> list[np.ndarray]:
    """30 frames of the bundled clip at 160x90."""
    return load_frames(BUNDLED_CLIP, size=SIZE, limit=30)


def write_clip(
    path: Path,
    images: list[np.ndarray],
    *,
    codec: str = "libx264",
    pts: list[int] | None = None,
    time_base: Fraction = Fraction(1, 25),
    rate: Fraction = Fraction(25),
    options: dict[str, str] | None = None,
    tone_hz: float | None = None,
) -> Path:
    """Encode `images` (BGR) with PyAV, frame k at pts[k] (default k) in `time_base` units;
    `tone_hz` adds a stereo AAC sine at 44.1 kHz as long as the video."""
    pts = list(range(len(images))) if pts is None else pts
    with av.open(str(path), "w") as out:
        video = out.add_stream(codec, rate=rate)
        video.width, video.height = images[0].shape[1], images[0].shape[0]
        video.pix_fmt = "yuvj420p" if codec == "mjpeg" else "yuv420p"
        video.time_base = video.codec_context.time_base = time_base
        video.options = options or ({"bf": "0", "g": "10"} if codec == "libx264" else {})
        audio = None
        if tone_hz is not None:
            audio = out.add_stream("aac", rate=44100)
            audio.layout = "stereo"
        for image, p in zip(images, pts, strict=True):
            frame = av.VideoFrame.from_ndarray(image, format="bgr24")
            frame.pts, frame.time_base = p, time_base
            for packet in video.encode(frame):
                out.mux(packet)
        for packet in video.encode():
            out.mux(packet)
        if audio is not None:
            seconds = float((pts[-1] + pts[1] - pts[0]) * time_base)
            t = np.arange(round(seconds * 44100)) / 44100
            wave = (0.3 * np.sin(2 * np.pi * tone_hz * t)).astype(np.float32)
            for start in range(0, len(wave), 1024):
                chunk = np.stack([wave[start : start + 1024]] * 2)
                frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="stereo")
                frame.sample_rate, frame.pts = 44100, start
                for packet in audio.encode(frame):
                    out.mux(packet)
            for packet in audio.encode():
                out.mux(packet)
    return path


def damage(path: Path, ks: list[int], out: Path, how: str = "noise") -> tuple[Path, list[int]]:
    """A copy of `path` with video packets `ks` damaged: random bytes over the middle half of
    each (`how="noise"`) or all of it zeroed ("zero"); their data is found in the file by
    content, so the container's own structure stays intact. (the copy, the damaged pts)"""
    with av.open(str(path)) as f:
        packets = [(p.pts, bytes(p)) for p in f.demux(video=0) if p.size]
    data = bytearray(path.read_bytes())
    at = 0
    for k, (_, payload) in enumerate(packets):  # in file order
        at = data.find(payload, at)
        assert at > 0
        n = len(payload)
        if k in ks and how == "zero":
            data[at : at + n] = bytes(n)
        elif k in ks:
            rng = np.random.default_rng(k)
            noise = rng.integers(0, 256, 3 * n // 4 - n // 4, np.uint8).tobytes()
            data[at + n // 4 : at + 3 * n // 4] = noise
        at += n
    out.write_bytes(bytes(data))
    return out, [packets[k][0] for k in ks]


def read_all(path: Path, **kwargs):
    with open_source(path, **kwargs) as src:
        return src, list(src)


def _mad(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


# ------------------------------------------------------------------------------------- timing


def test_ntsc_clip_keeps_30000_1001_and_every_pts(tmp_path, frames):
    path = write_clip(
        tmp_path / "ntsc.mp4",
        frames,
        pts=[1001 * k for k in range(len(frames))],
        time_base=Fraction(1, 30000),
        rate=Fraction(30000, 1001),
    )
    src, got = read_all(path)
    assert src.fps == 30000 / 1001 and src.frame_count == len(frames) == len(got)
    assert src._reader.rate == Fraction(30000, 1001)  # as FFmpeg gives it, not 29.97
    assert [f.pts for f in got] == [1001 * k for k in range(len(frames))]
    assert all(f.time_base == Fraction(1, 30000) for f in got)
    assert [f.timestamp for f in got] == [1001 * k / 30000 for k in range(len(frames))]
    assert [f.index for f in got] == list(range(len(frames)))
    assert all(f.fps == 30000 / 1001 for f in got)


@pytest.mark.parametrize(("ext", "unit"), [(".mp4", 90000), (".mkv", 1000)])
def test_variable_frame_rate_clip_keeps_its_own_times(tmp_path, frames, ext, unit):
    # frames of 20, 40, 100 and 33 ms in turn (a phone or screen recording), in the units
    # each container keeps: MP4 90 kHz, Matroska milliseconds
    ms = [20, 40, 100, 33] * (len(frames) // 4 + 1)
    pts = [sum(ms[:k]) * unit // 1000 for k in range(len(frames))]
    rate = Fraction(len(frames) * 1000, sum(ms[: len(frames)]))  # the average a muxer notes
    path = write_clip(
        tmp_path / f"vfr{ext}", frames, pts=pts, time_base=Fraction(1, unit), rate=rate
    )
    src, got = read_all(path)
    assert len(got) == len(frames) and src.error is None and src.skipped_frames == 0
    assert [f.pts for f in got] == pts
    assert all(f.time_base == Fraction(1, unit) for f in got)
    assert [f.timestamp for f in got] == [p / unit for p in pts]
    assert np.diff([f.timestamp for f in got]).round(3).tolist()[:4] == [0.02, 0.04, 0.1, 0.033]
    # still an average rate and a frame count (Matroska stores no count: duration x rate)
    assert src.fps == pytest.approx(float(rate), rel=0.05)
    assert src.frame_count is not None and abs(src.frame_count - len(frames)) <= 1
    for k in (0, 13, len(frames) - 1):  # and the right pictures
        assert int(np.argmin([_mad(got[k].image, f) for f in frames])) == k


def test_an_fps_override_replaces_the_files_own_times(tmp_path, frames):
    steps = [20, 40, 100, 33] * 3
    pts = [sum(steps[:k]) for k in range(10)]
    path = write_clip(tmp_path / "vfr.mkv", frames[:10], pts=pts, time_base=Fraction(1, 1000))
    src, got = read_all(path, fps=10)
    assert src.fps == 10.0 and [f.timestamp for f in got] == [k / 10 for k in range(10)]
    assert all(f.pts is None and f.time_base is None for f in got)  # written one by one


def test_loop_keeps_pts_increasing_across_the_restart(tmp_path, frames):
    path = write_clip(tmp_path / "short.mp4", frames[:5])
    with open_source(path, loop=True) as src:
        got = [src.read() for _ in range(12)]
    step = got[1].pts - got[0].pts  # (MP4 keeps 1/25 s as 512/12800)
    assert [f.index for f in got] == list(range(12))
    assert [f.pts for f in got] == [step * k for k in range(12)]  # the 6th: one frame on
    assert got[5].timestamp == 5 / 25 and np.array_equal(got[5].image, got[0].image)
    assert np.array_equal(got[11].image, got[1].image)


def test_live_file_frames_carry_wall_clock_time_and_no_pts(frames, tmp_path):
    path = write_clip(tmp_path / "live.mp4", frames[:10], tone_hz=440)
    with open_source(path, live=True) as src:
        before = time.monotonic()
        frame = src.read()
    assert frame.pts is None and frame.time_base is None
    assert abs(frame.timestamp - before) < 1.0  # capture time, as a camera's
    assert src.audio is not None  # still described: the writer says it is not recorded


# -------------------------------------------------------------------------------------- sound


def test_clip_with_a_tone_describes_its_sound(tmp_path, frames):
    path = write_clip(tmp_path / "tone.mp4", frames, tone_hz=440)
    src, got = read_all(path)
    audio = src.audio
    assert isinstance(audio, AudioInfo)
    assert (audio.codec, audio.sample_rate, audio.channels, audio.layout) == (
        "aac",
        44100,
        2,
        "stereo",
    )
    assert Path(audio.path) == path.resolve() and Path(audio.path).is_absolute()
    with av.open(audio.path) as f:  # the stream it names is that sound
        stream = f.streams[audio.stream_index]
        assert stream.type == "audio" and stream.codec_context.name == "aac"
        assert audio.start_time_s == float(stream.start_time * stream.time_base)
    # the first video frame's place on the file's clock, which the sound shares
    assert audio.video_start_s == float(got[0].pts * got[0].time_base) == 0.0
    assert len(got) == len(frames) and src.error is None


def test_sources_without_sound_have_none(tmp_path, frames):
    silent = write_clip(tmp_path / "silent.mp4", frames[:5])
    assert open_source(silent).audio is None
    cv2.imwrite(str(tmp_path / "a.png"), frames[0])
    assert open_source(tmp_path / "a.png").audio is None
    assert open_source(tmp_path).audio is None


def test_a_sound_file_is_no_video(tmp_path):
    path = tmp_path / "tone.m4a"
    with av.open(str(path), "w") as out:
        audio = out.add_stream("aac", rate=44100)
        audio.layout = "mono"
        for k in range(10):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), "fltp", "mono")
            frame.sample_rate, frame.pts = 44100, k * 1024
            for packet in audio.encode(frame):
                out.mux(packet)
        for packet in audio.encode():
            out.mux(packet)
    with pytest.raises(LiveheatError, match=r"tone.m4a': it has no video stream"):
        open_source(path)


def test_bundled_clip_sound(tmp_path):
    with open_source(BUNDLED_CLIP) as src:
        audio = src.audio
    assert (audio.codec, audio.sample_rate, audio.channels, audio.stream_index) == (
        "aac",
        48000,
        6,
        1,
    )


# ----------------------------------------------------------------------------------- damage


@pytest.mark.parametrize(("codec", "ext"), [("mjpeg", ".avi"), ("libx264", ".mkv")])
def test_a_damaged_frame_is_skipped_and_counted_and_the_run_goes_on(tmp_path, frames, codec, ext):
    clean = write_clip(tmp_path / f"clean{ext}", frames, codec=codec)
    bad, (lost,) = damage(clean, [15], tmp_path / f"bad{ext}")
    _, whole = read_all(clean)
    src, got = read_all(bad)
    assert len(got) == len(frames) - 1
    assert src.skipped_frames == 1 and src.error is None
    assert src.note == "skipped 1 damaged frame of 'bad" + ext + "'"
    want = [f.pts for f in whole if f.pts != lost]
    assert [f.pts for f in got] == want  # the others keep their times
    assert [f.index for f in got] == list(range(len(got)))
    assert np.array_equal(got[3].image, whole[3].image)  # before the damage: untouched
    if codec == "mjpeg":  # every frame stands alone: after it, untouched too
        assert np.array_equal(got[-1].image, whole[-1].image)


def test_damage_to_the_end_ends_the_source_with_an_error(tmp_path, frames):
    clean = write_clip(tmp_path / "clean.avi", frames, codec="mjpeg")
    bad, _ = damage(clean, [27, 28, 29], tmp_path / "bad.avi")
    src, got = read_all(bad)
    assert len(got) == 27 and src.skipped_frames == 3
    assert src.error == (
        "video 'bad.avi' ended early: read 27 of 30 frames, the last 3 could not be decoded "
        "(file truncated or corrupt)"
    )


def test_a_long_run_of_damage_is_unrecoverable(tmp_path, frames):
    n = MAX_BAD_RUN + 60
    tiny = [cv2.resize(f, (32, 18)) for f in frames]
    clean = write_clip(tmp_path / "long.avi", [tiny[k % 30] for k in range(n)], codec="mjpeg")
    bad, _ = damage(clean, list(range(20, n)), tmp_path / "bad.avi", how="zero")
    src, got = read_all(bad)
    assert len(got) == 20
    assert src.error.startswith(
        f"video 'bad.avi' cannot be decoded past frame 20: {MAX_BAD_RUN} packets in a row "
        "gave no good frame"
    )
    assert src.skipped_frames >= MAX_BAD_RUN - 20  # (frame threads hold a few back)


def test_a_file_with_no_decodable_frame_says_so(tmp_path, frames):
    clean = write_clip(tmp_path / "clean.avi", frames[:6], codec="mjpeg")
    bad, _ = damage(clean, list(range(6)), tmp_path / "bad.avi", how="zero")
    with pytest.raises(LiveheatError, match=r"bad.avi' has no readable frames: none could be"):
        open_source(bad)


# ----------------------------------------------------------------------------------- rotation


@pytest.mark.parametrize("matrix", ["cw90", "ccw90", "180"])
def test_a_rotated_phone_video_is_turned_upright_as_opencv_does(tmp_path, frames, matrix):
    path = write_clip(tmp_path / "phone.mp4", frames[:3])
    data = bytearray(path.read_bytes())
    identity = struct.pack(">9i", 0x10000, 0, 0, 0, 0x10000, 0, 0, 0, 0x40000000)
    at = data.find(identity, data.find(b"tkhd"))
    one = 0x10000
    turn = {
        "cw90": (0, one, 0, -one, 0, 0, 0, 0, 0x40000000),
        "ccw90": (0, -one, 0, one, 0, 0, 0, 0, 0x40000000),
        "180": (-one, 0, 0, 0, -one, 0, 0, 0, 0x40000000),
    }[matrix]
    data[at : at + 36] = struct.pack(">9i", *turn)
    path.write_bytes(bytes(data))
    src, got = read_all(path)
    upright = read_frames(path)  # OpenCV turns it by the same display matrix
    assert got[0].image.shape == upright[0].shape
    assert src.size == (upright[0].shape[1], upright[0].shape[0])
    assert _mad(got[0].image, upright[0]) < 2
    if matrix != "180":
        assert src.size == (SIZE[1], SIZE[0])


# ------------------------------------------------------------------------------ bundled clip


def test_bundled_clip_decodes_as_opencv_decodes_it():
    src, got = read_all(BUNDLED_CLIP)
    opencv = read_frames(BUNDLED_CLIP)
    assert len(got) == len(opencv) == CLIP_FRAMES == src.frame_count == 132
    assert src.fps == CLIP_FPS == 25.0 and src.size == CLIP_SIZE == (1280, 720)
    assert [f.pts for f in got] == [512 * k for k in range(CLIP_FRAMES)]
    assert all(f.time_base == Fraction(1, 12800) for f in got)
    assert [f.timestamp for f in got] == [k / 25 for k in range(CLIP_FRAMES)]
    for k in range(0, CLIP_FRAMES, 11):  # the same FFmpeg underneath: within a grey level
        assert got[k].image.dtype == np.uint8 and got[k].image.flags.c_contiguous
        assert _mad(got[k].image, opencv[k]) < 2
    assert src.skipped_frames == 0 and src.note is None and src.error is None
