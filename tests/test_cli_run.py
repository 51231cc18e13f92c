"""`liveheat run` and `liveheat demo` as a user runs them: subprocesses, real clip, real model.

Exit codes, the one-line messages, the files left behind, signals mid-recording.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

import liveheat
from tests.helpers.procs import reaped
from tests.helpers.videos import read_video
from tests.test_window import xvfb  # noqa: F401 - the private X server fixture

CLIP = Path(liveheat.__file__).parent / "data" / "bigbuckbunny.mp4"
N_CLIP = 132
FAST = ("--no-show", "--input-size", "128")


def liveheat_cmd(*args, env=None, cwd=None, timeout=180) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "liveheat", *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=timeout,
    )


def headless_env() -> dict:
    env = dict(os.environ)
    for name in ("DISPLAY", "WAYLAND_DISPLAY"):
        env.pop(name, None)
    return env


def frames_out(stdout: str) -> int:
    m = re.search(r"(\d+) frames in, (\d+) out", stdout)
    assert m, f"no summary in {stdout!r}"
    return int(m.group(2))


def test_run_writes_every_frame_keeping_fps_and_size(tmp_path):
    out = tmp_path / "out.mp4"
    r = liveheat_cmd("run", CLIP, "-o", out, *FAST)
    assert r.returncode == 0, r.stderr
    assert "132 frames in, 132 out" in r.stdout and f"wrote {out}" in r.stdout
    n, fps, size, first = read_video(out)
    assert (n, size) == (N_CLIP, (1280, 720))
    assert fps == pytest.approx(25.0)
    cap = cv2.VideoCapture(str(CLIP))
    original = cap.read()[1]
    cap.release()
    assert np.abs(first.astype(np.int16) - original).mean() > 10


def test_no_display_says_so_in_one_line_and_still_writes(tmp_path):
    out = tmp_path / "out.avi"
    r = liveheat_cmd(
        "run", CLIP, "-o", out, "--input-size", "128", "--max-frames", "10", env=headless_env()
    )
    assert r.returncode == 0, r.stderr
    notices = [line for line in r.stderr.splitlines() if line.startswith("liveheat: no display (")]
    assert len(notices) == 1 and notices[0].endswith("not showing a window")
    assert read_video(out)[0] == 10


def test_no_display_and_no_output_is_exit_2(tmp_path):
    r = liveheat_cmd("run", CLIP, "--input-size", "128", env=headless_env(), cwd=tmp_path)
    assert r.returncode == 2
    assert r.stderr.startswith("liveheat: error: no display")
    assert "Traceback" not in r.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_mid_recording_leaves_a_playable_file(tmp_path, sig, code):
    out = tmp_path / "out.mp4"
    # --max-fps 10 makes the 132-frame clip take ~13 s, so the signal lands mid-run
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "liveheat",
            "run",
            str(CLIP),
            "-o",
            str(out),
            *FAST,
            "--max-fps",
            "10",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    partial = tmp_path / f".out.{proc.pid}.tmp.mp4"  # frames go here until the file is final
    with reaped(proc):
        deadline = time.monotonic() + 90
        while not (partial.exists() and partial.stat().st_size > 150_000):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "no frames were written"
            time.sleep(0.1)
        assert not out.exists()
        proc.send_signal(sig)
        stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == code, stderr
    assert "Traceback" not in stderr
    n_summary = frames_out(stdout)
    n, fps, size, _ = read_video(out)
    assert 0 < n == n_summary < N_CLIP
    assert size == (1280, 720) and fps == pytest.approx(25.0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.mp4"]  # no temporary left


SIGNAL_WHILE_OPENING = """
import os, signal, sys
import liveheat.outputs.video as outputs
from liveheat.cli import main

opened = outputs.VideoSink.__init__

def init(self, *args, **kwargs):  # the signal lands while the outputs are being opened
    opened(self, *args, **kwargs)
    os.kill(os.getpid(), signal.SIGTERM)

outputs.VideoSink.__init__ = init
sys.exit(main(sys.argv[1:]))
"""


def test_sigterm_while_opening_the_outputs_keeps_the_old_file(tmp_path):
    out = tmp_path / "out.mp4"
    out.write_bytes(b"an older recording")
    cmd = [sys.executable, "-c", SIGNAL_WHILE_OPENING, "run", str(CLIP), "-o", str(out), *FAST]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert r.returncode == 143, r.stderr
    assert "Traceback" not in r.stderr and frames_out(r.stdout) == 0
    assert out.read_bytes() == b"an older recording"
    assert [p.name for p in tmp_path.iterdir()] == ["out.mp4"]  # no temporary file left


def test_output_over_the_source_is_refused_and_the_source_kept(tmp_path):
    clip = tmp_path / "in.mp4"
    clip.write_bytes(CLIP.read_bytes())
    for args in (("-o", clip), ("-o", tmp_path / "." / "in.mp4"), ("--dump-maps", clip)):
        r = liveheat_cmd("run", clip, *args, *FAST, cwd=tmp_path)
        assert r.returncode == 2, r.stderr
        assert r.stderr.startswith("liveheat: error:") and "source itself" in r.stderr
        assert clip.read_bytes() == CLIP.read_bytes()
    assert [p.name for p in tmp_path.iterdir()] == ["in.mp4"]


def test_truncated_clip_processes_readable_frames_then_fails(tmp_path):
    cap = cv2.VideoCapture(str(CLIP))
    full = tmp_path / "full.avi"
    writer = cv2.VideoWriter(str(full), cv2.VideoWriter_fourcc(*"MJPG"), 25, (320, 180))
    while True:
        ok, image = cap.read()
        if not ok:
            break
        writer.write(cv2.resize(image, (320, 180), interpolation=cv2.INTER_AREA))
    writer.release()
    cap.release()
    data = full.read_bytes()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(data[: len(data) // 2])
    readable = read_video(cut)[0]
    assert 0 < readable < N_CLIP

    out = tmp_path / "out.avi"
    r = liveheat_cmd("run", cut, "-o", out, *FAST)
    assert r.returncode == 1  # a run that ended early, not a bad argument (2)
    assert len(r.stderr.splitlines()) == 1  # FFmpeg's own complaint is silenced
    last = r.stderr.splitlines()[-1]
    assert last.startswith("liveheat: error:") and "ended early" in last
    assert "Traceback" not in r.stderr
    assert frames_out(r.stdout) == readable
    assert read_video(out)[0] == readable  # finalised: every readable frame is in it


@pytest.mark.parametrize(
    "args",
    [
        ("no/such/clip.mp4",),
        (CLIP, "--colormap", "jt"),
        (CLIP, "--every", "0"),
        (CLIP, "--method", "bogus"),
        (CLIP, "--model", "no/such/model.onnx"),
        (CLIP, "--smooth", "1.5"),
        (CLIP, "--alpha", "x"),
        ("http://127.0.0.1:9/refused.mjpg",),
        (CLIP, "--layer", "featurs"),
        (CLIP, "--target", "zebraa"),
    ],
    ids=[
        "missing-file",
        "colormap",
        "every",
        "method",
        "model",
        "smooth",
        "alpha",
        "refused-url",
        "layer",
        "target",
    ],
)
def test_bad_arguments_exit_2_without_traceback_or_file(tmp_path, args):
    out = tmp_path / "out.mp4"
    r = liveheat_cmd("run", *args, "-o", out, *FAST)
    assert r.returncode == 2, r.stderr
    assert r.stderr.startswith("liveheat: error:") and len(r.stderr.splitlines()) == 1
    assert not out.exists()


def test_bad_output_extension_exit_2_without_file(tmp_path):
    out = tmp_path / "out.xyz"
    r = liveheat_cmd("run", CLIP, "-o", out, *FAST)
    assert r.returncode == 2 and r.stderr.startswith("liveheat: error:")
    assert not out.exists()


def test_missing_camera_fails_clearly(tmp_path):
    out = tmp_path / "out.mp4"
    r = liveheat_cmd("run", "9", "-o", out, *FAST)
    assert r.returncode == 2 and r.stderr.startswith("liveheat: error:")
    assert "camera" in r.stderr and "Traceback" not in r.stderr
    assert not out.exists()


def test_dump_maps_shape_without_a_video(tmp_path):
    maps = tmp_path / "maps.npz"
    r = liveheat_cmd("run", CLIP, "--dump-maps", maps, "--max-frames", "12", *FAST)
    assert r.returncode == 0, r.stderr
    with np.load(maps) as z:
        assert z["maps"].dtype == np.float32 and z["maps"].shape == (12, 4, 4)
        assert z["frames"].tolist() == list(range(12))
    assert r.stdout.rstrip().endswith(f"wrote {maps} (12 maps)")
    assert [p.name for p in tmp_path.iterdir()] == ["maps.npz"]  # no temporary file left


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("no/such/dir/m.npz", "folder .* does not exist"),
        ("folder", "it is a folder"),
        ("m.txt", "expected an .npz file name"),
    ],
)
def test_bad_dump_maps_path_fails_before_the_run(tmp_path, name, message):
    (tmp_path / "folder").mkdir()
    t0 = time.monotonic()
    r = liveheat_cmd("run", CLIP, "--dump-maps", tmp_path / name, "-o", tmp_path / "o.avi", *FAST)
    assert r.returncode == 2, r.stderr
    assert r.stderr.startswith("liveheat: error: cannot write maps") and re.search(
        message, r.stderr
    )
    assert len(r.stderr.splitlines()) == 1 and r.stdout == ""
    assert [p.name for p in tmp_path.iterdir()] == ["folder"]
    assert list((tmp_path / "folder").iterdir()) == []
    assert time.monotonic() - t0 < 60  # (the clip itself is not processed)


def test_an_unexpected_exception_is_one_line_exit_1(monkeypatch, capsys):
    from liveheat import cli

    def boom(args):
        raise RuntimeError("something broke\nbadly")

    monkeypatch.setattr(cli, "_cmd_doctor", boom)
    monkeypatch.delenv("LIVEHEAT_DEBUG", raising=False)
    assert cli.main(["doctor"]) == 1
    err = capsys.readouterr().err
    assert err == (
        "liveheat: error: internal error: RuntimeError: something broke badly "
        "(set LIVEHEAT_DEBUG=1 for the traceback)\n"
    )
    monkeypatch.setenv("LIVEHEAT_DEBUG", "1")
    with pytest.raises(RuntimeError, match="something broke"):
        cli.main(["doctor"])


def test_demo_writes_liveheat_demo_mp4_in_the_current_dir(tmp_path):
    r = liveheat_cmd("demo", "--no-show", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "132 frames in, 132 out" in r.stdout and "liveheat-demo.mp4" in r.stdout
    n, fps, size, _ = read_video(tmp_path / "liveheat-demo.mp4")
    assert (n, size) == (N_CLIP, (1280, 720)) and fps == pytest.approx(25.0)


def test_demo_takes_the_model_and_drawing_options_of_run(tmp_path):
    from tests.helpers.videos import read_frames

    r = liveheat_cmd(
        "demo", "--no-show", "-o", tmp_path / "mask.mp4", "--method", "eigen", "--mode", "mask",
        "--alpha", "1", "--no-hud", cwd=tmp_path,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "132 frames in, 132 out" in r.stdout
    out, src = read_frames(tmp_path / "mask.mp4", 20), read_frames(CLIP, 20)
    # a full mask keeps the hot pixels and darkens the rest: far darker than the clip itself
    assert np.mean([o.mean() for o in out]) < 0.75 * np.mean([s.mean() for s in src])
    bad = liveheat_cmd("demo", "--no-show", "--method", "gradcam", cwd=tmp_path)
    assert bad.returncode == 2 and bad.stderr.startswith("liveheat: error:")
    assert "gradcam" in bad.stderr and "Traceback" not in bad.stderr
    assert not (tmp_path / "liveheat-demo.mp4").exists()


def test_stream_url_as_a_live_source(tmp_path):
    from tests.helpers.mjpeg_server import MjpegServer

    out = tmp_path / "out.avi"
    with MjpegServer(CLIP, fps=25, size=(320, 180), limit=40) as srv:
        r = liveheat_cmd("run", srv.url, "-o", out, "--max-frames", "20", *FAST)
    assert r.returncode == 0, r.stderr
    assert "20 out" in r.stdout
    n, fps, size, _ = read_video(out)
    assert size == (320, 180)
    # frames are placed by capture time: any drop is filled by repeats, and the summary says so
    m = re.search(r"(\d+) frames in the file at 25 fps to keep wall-clock time", r.stdout)
    assert n == (int(m.group(1)) if m else 20) and n >= 20


def test_window_keys_change_the_run_live_and_q_quits(xvfb, tmp_path):  # noqa: F811
    """Under Xvfb: 'm' switches cam -> eigen mid-run (the dumped maps show it), 'q' ends it."""
    import shutil

    from liveheat.model.backbone import Backbone
    from liveheat.model.heatmaps import heatmap

    if shutil.which("xdotool") is None:
        pytest.skip("xdotool is not installed")
    out, maps = tmp_path / "out.avi", tmp_path / "maps.npz"
    cmd = [sys.executable, "-m", "liveheat", "run", str(CLIP), "-o", str(out)]
    cmd += ["--dump-maps", str(maps), "--input-size", "128", "--max-fps", "10"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    with reaped(proc):

        def xdotool(*args):
            r = subprocess.run(["xdotool", *args], capture_output=True, text=True, timeout=60)
            assert r.returncode == 0, r.stderr
            return r.stdout.split()

        # the whole title: "liveheat" alone also matches the display probe's short-lived
        # "liveheat-probe" window, which may be gone by the time the keys are sent
        window = xdotool("search", "--sync", "--name", "^liveheat$")[0]
        time.sleep(1.0)  # some frames with cam
        xdotool("key", "--window", window, "m")
        time.sleep(1.5)  # some frames with eigen
        xdotool("key", "--window", window, "q")
        stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr
    assert 0 < frames_out(stdout) < N_CLIP  # q stopped the run early
    with np.load(maps) as z:
        first, last = int(z["frames"][0]), int(z["frames"][-1])
        m_first, m_last = z["raw"][0], z["raw"][-1]  # before smoothing
    bb = Backbone(input_size=128)
    cap = cv2.VideoCapture(str(CLIP))
    frames = [cap.read()[1] for _ in range(last + 1)]
    cap.release()
    np.testing.assert_allclose(m_first, heatmap(bb(frames[first]), "cam"), rtol=1e-4, atol=1e-4)
    eig = heatmap(bb(frames[last]), "eigen")
    eig = eig if float((eig * m_last).sum()) >= 0 else -eig  # on video eigen keeps its sign
    np.testing.assert_allclose(m_last, eig, rtol=1e-4, atol=1e-4)
