"""Video files as users get them, all with real parts: a real browser plays them, the sound
of a clip made here comes through, times are kept, a full disk and signals are survived.

Everything is written through liveheat (the API in-process, or `python -m liveheat` as a
subprocess where exit codes, signals and stderr are the point) and read back with PyAV.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import http.server
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

import liveheat
from liveheat.outputs.recovery import recover_temporaries
from liveheat.outputs.video import VideoSink
from liveheat.sources.base import Frame
from tests.helpers.mjpeg_server import MjpegServer, load_frames
from tests.helpers.procs import reaped

CLIP = Path(liveheat.__file__).parent / "data" / "bigbuckbunny.mp4"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FAST = ("--no-show", "--input-size", "64")


def liveheat_cmd(*args, timeout=180) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "liveheat", *map(str, args)],
        capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip


def frames_out(stdout: str) -> int:
    m = re.search(r"(\d+) frames in, (\d+) out", stdout)
    assert m, f"no summary in {stdout!r}"
    return int(m.group(2))


def video_times(path) -> list[float]:
    """Presentation times (s) of every video frame PyAV decodes, up to a cut if there is one."""
    times = []
    with av.open(str(path)) as f:
        try:
            for frame in f.decode(video=0):
                times.append(float(frame.time))
        except av.FFmpegError:
            pass  # a file cut short: what came before the cut
    return times


def stream_info(path) -> dict:
    """Per stream type: codec, end time (s, last packet's pts + duration), rate, packets."""
    info: dict = {}
    with av.open(str(path)) as f:
        ends: dict = {}
        packets: dict = {}
        for p in f.demux():
            if p.pts is None or not p.size:
                continue
            s = p.stream
            end = float((p.pts + (p.duration or 0)) * s.time_base)
            ends[s.type] = max(ends.get(s.type, 0.0), end)
            packets.setdefault(s.type, []).append(bytes(p))
        for s in f.streams:
            info[s.type] = {
                "codec": s.codec_context.codec.canonical_name,
                "end": ends.get(s.type, 0.0),
                "rate": s.average_rate if s.type == "video" else s.codec_context.sample_rate,
                "packets": packets.get(s.type, []),
            }
    return info


def small_clip_frames(n: int = 50) -> list[np.ndarray]:
    return load_frames(CLIP, size=(320, 180), limit=n)


# ------------------------------------------------------------------- (a) a real browser plays it
PAGE = """<!doctype html><html><body>
<video id="v" muted autoplay playsinline></video>
<pre id="report">pending</pre>
<script>
const v = document.getElementById("v");
v.src = new URLSearchParams(location.search).get("src");
let presented = 0;
function onFrame(now, meta) {
  presented = meta.presentedFrames; v.requestVideoFrameCallback(onFrame);
}
if (v.requestVideoFrameCallback) v.requestVideoFrameCallback(onFrame);
setInterval(() => {
  const q = v.getVideoPlaybackQuality ? v.getVideoPlaybackQuality() : {};
  document.getElementById("report").textContent = JSON.stringify({
    readyState: v.readyState, duration: v.duration, videoWidth: v.videoWidth,
    videoHeight: v.videoHeight, totalVideoFrames: q.totalVideoFrames || 0, presented: presented,
    error: v.error ? v.error.code + " " + v.error.message : null});
}, 50);
</script></body></html>
"""


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


def _ordinary_scheduling() -> None:
    """In the child: the normal scheduler. A test runner started at a real-time priority
    (seen here: SCHED_FIFO 99) hands it to its children, and Chromium's busy threads at that
    priority starve the machine, its own exit on SIGKILL included."""
    if hasattr(os, "sched_setscheduler"):
        try:
            os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
        except OSError:
            pass


def _run_browser(cmd: list[str], timeout: float = 90) -> tuple[str, str, int]:
    """Run Chromium in its own process group; on a timeout the whole group is killed (a
    renderer left behind would hold the pipes open, and the test would wait for ever)."""
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
        preexec_fn=_ordinary_scheduling,
    )  # fmt: skip
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        try:
            out, err = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            out, err = "", "chromium did not end after SIGKILL"
    return out, err, proc.returncode if proc.returncode is not None else -9


def browser_report(folder: Path, name: str) -> dict:
    """What headless Chromium says of <video src=name>, served over HTTP from `folder`."""
    (folder / "page.html").write_text(PAGE)
    handler = functools.partial(_Quiet, directory=str(folder))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}/page.html?src={name}"
        cmd = [
            "timeout", "60", CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
            "--disable-quic", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync",
            f"--user-data-dir={folder / ('profile-' + name)}", "--virtual-time-budget=5000",
            "--dump-dom", url,
        ]  # fmt: skip
        stdout, stderr, code = _run_browser(cmd)
    finally:
        httpd.shutdown()
        httpd.server_close()
    m = re.search(r'<pre id="report">([^<]*)</pre>', stdout)
    assert m, (code, stderr[-2000:])
    return json.loads(m.group(1).replace("&quot;", '"').replace("&amp;", "&"))


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (apt-get install chromium)")
@pytest.mark.parametrize("ext", [".mp4", ".webm"])
def test_a_real_browser_plays_the_file(tmp_path, ext):
    out = tmp_path / f"out{ext}"
    stats = liveheat.annotate_video(CLIP, out, max_frames=50, input_size=64)
    assert stats.frames_out == 50
    report = browser_report(tmp_path, out.name)
    assert report["error"] is None, report
    assert report["readyState"] >= 2 and report["videoWidth"] == 1280, report
    assert report["duration"] == pytest.approx(2.0, abs=0.05), report  # 50 frames at 25 fps
    assert max(report["totalVideoFrames"], report["presented"]) > 0, report


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (apt-get install chromium)")
def test_the_browser_check_sees_a_file_it_cannot_play(tmp_path):
    """The check above can fail: OpenCV's mp4v, what liveheat wrote before, is refused."""
    from tests.helpers.videos import write_video

    write_video(tmp_path / "old.mp4", small_clip_frames(10), 25.0, "mp4v")
    report = browser_report(tmp_path, "old.mp4")
    assert report["videoWidth"] == 0 and "NO_SUPPORTED_STREAMS" in (report["error"] or "")


# ------------------------------------------------------------------- (b) the sound comes through
def make_clip_with_tone(path: Path, *, frames: int = 75, fps: int = 25, rate: int = 44100):
    """A 320x180 H.264 clip with a 440 Hz AAC tone of the same length, made with PyAV."""
    images = small_clip_frames(frames)
    with av.open(str(path), "w") as out:
        vs = out.add_stream("libx264", rate=fps, options={"preset": "ultrafast"})
        vs.width, vs.height, vs.pix_fmt = 320, 180, "yuv420p"
        au = out.add_stream("aac", rate=rate)
        au.layout = "mono"
        sent = 0
        for i, image in enumerate(images):
            vf = av.VideoFrame.from_ndarray(image, format="bgr24")
            vf.pts = i
            vf.time_base = Fraction(1, fps)
            out.mux(vs.encode(vf))
            while sent < (i + 1) * rate // fps:
                t = (sent + np.arange(1024)) / rate
                tone = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None]
                af = av.AudioFrame.from_ndarray(tone, format="fltp", layout="mono")
                af.sample_rate, af.pts, af.time_base = rate, sent, Fraction(1, rate)
                out.mux(au.encode(af))
                sent += 1024
        out.mux(vs.encode(None))
        out.mux(au.encode(None))
    return path


@pytest.fixture(scope="module")
def tone_clip(tmp_path_factory) -> Path:
    return make_clip_with_tone(tmp_path_factory.mktemp("tone") / "tone.mp4")


@pytest.mark.parametrize(
    ("ext", "codec", "copied"),
    [
        (".mp4", "aac", True),
        (".mkv", "aac", True),
        (".webm", "opus", False),
        (".avi", "mp3", False),
    ],
)
def test_the_sound_goes_into_the_file_as_long_as_the_video(tmp_path, tone_clip, ext, codec, copied):
    out = tmp_path / f"out{ext}"
    stats = liveheat.annotate_video(tone_clip, out, input_size=64, hud=False)
    assert stats.frames_out == 75
    info, src = stream_info(out), stream_info(tone_clip)
    assert info["audio"]["codec"] == codec
    video_end = info["video"]["end"]
    assert video_end == pytest.approx(3.0, abs=0.001)
    assert abs(info["audio"]["end"] - video_end) <= 1 / 25  # within one frame
    if copied:  # stream copy: the source's packets, byte for byte, over the copied span
        got, orig = info["audio"]["packets"], src["audio"]["packets"]
        k = orig.index(got[0])
        assert got == orig[k : k + len(got)] and len(got) >= len(orig) - 3


def test_the_sound_is_cut_at_the_last_frame_written(tmp_path, tone_clip):
    out = tmp_path / "cut.mp4"
    stats = liveheat.annotate_video(tone_clip, out, input_size=64, hud=False, max_frames=30)
    assert stats.frames_out == 30
    info = stream_info(out)
    assert info["video"]["end"] == pytest.approx(1.2, abs=0.001)
    assert abs(info["audio"]["end"] - 1.2) <= 1 / 25


def test_no_audio_leaves_the_sound_out(tmp_path, tone_clip):
    r = liveheat_cmd("run", tone_clip, "-o", tmp_path / "mute.mp4", "--no-audio", *FAST)
    assert r.returncode == 0, r.stderr
    assert "audio" not in stream_info(tmp_path / "mute.mp4") and "sound" not in r.stderr


def test_a_sound_the_file_cannot_hold_is_said_in_one_line(tmp_path, monkeypatch):
    from liveheat.outputs import codecs
    from liveheat.sources.base import AudioInfo

    flac = tmp_path / "flac.mkv"  # a FLAC sound, which WebM cannot hold unchanged
    with av.open(str(flac), "w") as f:
        au = f.add_stream("flac", rate=44100)
        au.layout = "mono"
        af = av.AudioFrame.from_ndarray(np.zeros((1, 4096), np.int16), format="s16", layout="mono")
        af.sample_rate, af.pts = 44100, 0
        f.mux(au.encode(af))
        f.mux(au.encode(None))
    with av.open(str(flac)) as f:  # (a sound-only file: no Source opens it)
        st = f.streams.audio[0]
        src = AudioInfo(str(flac), st.index, st.codec_context.name, st.rate, st.channels, 0.0)
    assert src.codec == "flac"
    # ... and an FFmpeg without an Opus encoder: nothing can carry it
    webm = dataclasses.replace(codecs.CONTAINERS[".webm"], audio_encoder=None)
    monkeypatch.setitem(codecs.CONTAINERS, ".webm", webm)
    notes: list[str] = []
    with VideoSink(tmp_path / "x.webm", fps=25, audio=src, notice=notes.append) as sink:
        sink.write(small_clip_frames(1)[0])
    assert len(notes) == 1 and "no sound" in notes[0] and "flac" in notes[0], notes
    assert video_times(tmp_path / "x.webm") == [0.0]


# ------------------------------------------------------------------- (c) times are kept
def write_clip(path: Path, pts: list[int], time_base: Fraction, rate: Fraction) -> Path:
    images = small_clip_frames(len(pts))
    with av.open(str(path), "w") as out:
        vs = out.add_stream("libx264", rate=rate, options={"preset": "ultrafast", "bframes": "0"})
        vs.width, vs.height, vs.pix_fmt = 320, 180, "yuv420p"
        vs.time_base = vs.codec_context.time_base = time_base
        for image, p in zip(images, pts, strict=True):
            vf = av.VideoFrame.from_ndarray(image, format="bgr24")
            vf.pts, vf.time_base = p, time_base
            out.mux(vs.encode(vf))
        out.mux(vs.encode(None))
    return path


VFR_PTS = [0, 40, 80, 200, 240, 250, 400, 440, 480, 700]  # ms: irregular gaps


def test_the_writer_keeps_variable_frame_times(tmp_path):
    tb = Fraction(1, 1000)
    images = small_clip_frames(len(VFR_PTS))
    for ext in (".mp4", ".mkv", ".webm"):
        out = tmp_path / f"vfr{ext}"
        with VideoSink(out, fps=25) as sink:
            for k, (image, p) in enumerate(zip(images, VFR_PTS, strict=True)):
                sink.write(image, Frame(image, k, p / 1000, 25.0, pts=p, time_base=tb))
        assert video_times(out) == pytest.approx([p / 1000 for p in VFR_PTS], abs=1e-3), ext


def test_the_writer_keeps_29_97_exactly(tmp_path):
    tb = Fraction(1001, 30000)
    images = small_clip_frames(30)
    out = tmp_path / "ntsc.mp4"
    with VideoSink(out, fps=30000 / 1001) as sink:
        for k, image in enumerate(images):
            sink.write(image, Frame(image, k, float(k * tb), 30000 / 1001, pts=k, time_base=tb))
    with av.open(str(out)) as f:
        s = f.streams.video[0]
        assert s.average_rate == Fraction(30000, 1001)
        assert 30000 % s.time_base.denominator == 0  # 1/30000: every frame on an exact tick
    assert video_times(out) == pytest.approx([float(k * tb) for k in range(30)], abs=1e-6)


def test_a_29_97_clip_stays_30000_1001_end_to_end(tmp_path):
    clip = write_clip(
        tmp_path / "ntsc.mp4", list(range(40)), Fraction(1001, 30000), Fraction(30000, 1001)
    )
    out = tmp_path / "out.mp4"
    liveheat.annotate_video(clip, out, input_size=64, hud=False)
    with av.open(str(out)) as f:
        assert f.streams.video[0].average_rate == Fraction(30000, 1001)
    times = video_times(out)
    assert len(times) == 40 and times[-1] == pytest.approx(39 * 1001 / 30000, abs=1e-4)
    assert stream_info(out)["video"]["end"] == pytest.approx(40 * 1001 / 30000, abs=1 / 30)


def test_a_variable_frame_rate_clip_keeps_its_times_end_to_end(tmp_path):
    clip = write_clip(tmp_path / "vfr.mp4", VFR_PTS, Fraction(1, 1000), Fraction(25))
    out = tmp_path / "out.mp4"
    liveheat.annotate_video(clip, out, input_size=64, hud=False)
    assert video_times(out) == pytest.approx([p / 1000 for p in VFR_PTS], abs=1e-3)


# ------------------------------------------------------------------- (d) a full disk
@pytest.fixture
def small_disk(tmp_path):
    """A 3 MB tmpfs (root only), unmounted after the test."""
    mnt = tmp_path / "disk"
    mnt.mkdir()
    r = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mnt)], capture_output=True
    )
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.decode().strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def test_a_full_disk_is_one_line_exit_1_and_the_older_file_survives(small_disk):
    out = small_disk / "out.mp4"
    out.write_bytes(os.urandom(2_000_000))  # an older recording: 1 MB is left free
    before = hashlib.sha256(out.read_bytes()).hexdigest()
    r = liveheat_cmd("run", CLIP, "-o", out, *FAST)
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert r.returncode == 1, r.stderr
    assert lines == [f"liveheat: error: cannot write {out}: No space left on device"], r.stderr
    assert "wrote" not in r.stdout
    assert hashlib.sha256(out.read_bytes()).hexdigest() == before
    assert [p.name for p in small_disk.iterdir()] == ["out.mp4"]  # no temporary file left


# ------------------------------------------------------------------- (e) signals, crashes, segments
def numbered_frames(n: int = 60) -> list[np.ndarray]:
    """Frames that say their number: grey level 10 + 4k (k = 0..59), 320x180."""
    return [np.full((180, 320, 3), 10 + 4 * k, np.uint8) for k in range(n)]


def frame_numbers(path) -> list[int]:
    with av.open(str(path)) as f:
        return [round((fr.to_ndarray(format="gray").mean() - 10) / 4) for fr in f.decode(video=0)]


def start_live(url: str, out: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "liveheat", "run", url, "-o", str(out), *FAST, *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def wait_for(path: Path, proc: subprocess.Popen, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not (path.exists() and path.stat().st_size > 0):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)


def test_sigkill_leaves_a_playable_recording_that_the_next_run_keeps(tmp_path):
    n_seconds = 6
    out = tmp_path / "out.mp4"
    with MjpegServer(CLIP, fps=25, size=(320, 180), limit=60) as srv:
        proc = start_live(srv.url, out)
        partial = tmp_path / f".out.{proc.pid}.tmp.mp4"
        with reaped(proc):
            wait_for(partial, proc)
            time.sleep(n_seconds)
            proc.kill()  # SIGKILL: nothing is finalised
            proc.wait(30)
    assert not out.exists() and partial.exists()
    times = video_times(partial)  # the fragments written before the kill play as they are
    assert times and times[-1] - times[0] >= n_seconds - 2, times[-1:]
    # the next run on that path keeps it, says so in one line, and writes its own file
    r = liveheat_cmd("run", CLIP, "-o", out, "--max-frames", "3", *FAST)
    assert r.returncode == 0, r.stderr
    kept = sorted(tmp_path.glob("out.partial-*.mp4"))
    assert len(kept) == 1 and re.fullmatch(r"out\.partial-\d{8}-\d{6}\.mp4", kept[0].name)
    notes = [line for line in r.stderr.splitlines() if line.startswith("liveheat: kept ")]
    assert len(notes) == 1 and str(kept[0]) in notes[0] and f"pid {proc.pid}" in notes[0]
    assert len(video_times(kept[0])) >= len(times) - 1  # the repaired file: nothing lost
    stamp = time.mktime(time.strptime(kept[0].name[12:27], "%Y%m%d-%H%M%S"))
    assert abs(stamp - (time.time() - n_seconds - 8)) < 60  # named by when it started
    assert not partial.exists() and len(video_times(out)) == 3


def test_an_unplayable_leftover_is_removed_with_one_line(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    junk = tmp_path / f".out.{dead.pid}.tmp.mp4"
    junk.write_bytes(b"\0\0\0\x20ftypisom" + os.urandom(5000))  # killed before its index
    mine = tmp_path / f".out.{os.getpid()}.tmp.mp4"  # a running process's: left alone
    mine.write_bytes(b"x")
    notes: list[str] = []
    assert recover_temporaries(tmp_path / "out.mp4", notes.append) == []
    assert not junk.exists() and mine.exists()
    assert (
        len(notes) == 1 and notes[0].startswith(f"removed {junk}") and "does not play" in notes[0]
    )


def test_a_killed_segment_is_kept_under_its_own_start_time(tmp_path):
    from types import SimpleNamespace

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    sink = VideoSink(tmp_path / "rec.mp4", fps=25, by_timestamp=True, segment=60)
    t0 = time.monotonic()
    for k, image in enumerate(small_clip_frames(70)):  # 2.8 s: two whole fragments and more
        sink.write(image, SimpleNamespace(timestamp=t0 + k / 25))
    seg_tmp = sink.tmp_path  # .rec-YYYYmmdd-HHMMSS.<pid>.tmp.mp4, still being written
    assert re.fullmatch(r"\.rec-\d{8}-\d{6}\.\d+\.tmp\.mp4", seg_tmp.name)
    left = seg_tmp.with_name(seg_tmp.name.replace(f".{os.getpid()}.", f".{dead.pid}."))
    shutil.copy(seg_tmp, left)  # as a killed process would have left it
    notes: list[str] = []
    kept = recover_temporaries(tmp_path / "rec.mp4", notes.append)
    stamp = seg_tmp.name[5:20]
    assert [k.name for k in kept] == [f"rec.partial-{stamp}.mp4"] and len(notes) == 1
    assert len(video_times(kept[0])) >= 50  # all but the last fragment
    sink.close()  # the live one was left alone and finishes as usual
    assert len(video_times(tmp_path / f"rec-{stamp}.mp4")) == 70


def test_segments_split_a_live_recording_without_losing_or_doubling_a_frame(tmp_path):
    out = tmp_path / "rec.mp4"
    with MjpegServer(numbered_frames(), fps=25, limit=None) as srv:
        r = liveheat_cmd(
            "run", srv.url, "-o", out, "--segment", "2s", "--max-frames", "90",
            "--alpha", "0", "--no-hud", *FAST,
        )  # fmt: skip
    assert r.returncode == 0, r.stderr
    files = sorted(tmp_path.glob("rec-*.mp4"))
    assert len(files) >= 2, (files, r.stdout)
    assert all(re.fullmatch(r"rec-\d{8}-\d{6}(-\d+)?\.mp4", f.name) for f in files)
    assert not out.exists() and not list(tmp_path.glob(".*tmp*"))
    assert all(str(f) in r.stdout for f in files)  # the summary names every file
    numbers = [frame_numbers(f) for f in files]
    assert sum(map(len, numbers)) == frames_out(r.stdout) == 90  # the counts add up
    seq = [k for part in numbers for k in part]
    steps = [(b - a) % 60 for a, b in zip(seq, seq[1:], strict=False)]
    assert 0 not in steps, steps  # no frame twice, at a boundary or anywhere
    for f in files:  # each plays alone, from 0, at most about one segment long
        times = video_times(f)
        assert times[0] == 0.0 and times[-1] < 2.0 + 0.1


def test_sighup_finalises_the_recording_and_exits_129(tmp_path):
    out = tmp_path / "out.mp4"
    with MjpegServer(CLIP, fps=25, size=(320, 180), limit=60) as srv:
        proc = start_live(srv.url, out)
        with reaped(proc):
            wait_for(tmp_path / f".out.{proc.pid}.tmp.mp4", proc)
            time.sleep(2)
            proc.send_signal(signal.SIGHUP)  # the terminal went away
            stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 129, stderr
    assert "Traceback" not in stderr
    n = frames_out(stdout)
    assert n > 0 and len(video_times(out)) == n
    assert [p.name for p in tmp_path.iterdir()] == ["out.mp4"]


@pytest.mark.parametrize("codec,ext", [("mpeg4", ".mp4"), ("mjpeg", ".avi")])
def test_the_quantiser_of_mjpeg_and_mpeg4_is_obeyed(tmp_path, codec, ext):
    # --crf N is their fixed quantiser: FFmpeg's "q:v" is a command-line word the library
    # ignores, so every N once gave the same file; now a finer quantiser is larger and closer
    with av.open(str(CLIP)) as f:
        decoded = zip(range(12), f.decode(video=0), strict=False)
        frames = [fr.to_ndarray(format="bgr24") for _, fr in decoded]
    got = {}
    for q in (2, 12, 31):
        path = tmp_path / f"q{q}{ext}"
        with VideoSink(path, fps=25, size=(1280, 720), codec=codec, crf=q, audio=None) as sink:
            for image in frames:
                sink.write(image)
        with av.open(str(path)) as f:
            back = [fr.to_ndarray(format="bgr24") for fr in f.decode(video=0)]
        assert len(back) == len(frames)
        pairs = zip(back, frames, strict=True)
        mse = np.mean([np.mean((a.astype(float) - b) ** 2) for a, b in pairs])
        got[q] = (path.stat().st_size, 10 * np.log10(255**2 / mse))
    (s2, p2), (s12, p12), (s31, p31) = got[2], got[12], got[31]
    assert s2 > 1.5 * s12 > 1.5 * 1.2 * s31, got
    assert p2 > p12 + 2 > p31 + 3, got
