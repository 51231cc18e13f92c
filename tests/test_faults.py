"""The outside test's fault table (issue 13), one regression test a row where it is fixed, all
through the real command line (`python -m liveheat`): exit status, the one stderr line, and
the files left behind. `scripts/check_faults.py` replays the same rows and prints a table.
"""

from __future__ import annotations

import os
import re
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

import liveheat


def cli(*args, timeout=60, env=None, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "liveheat", *map(str, args)],
        capture_output=True, text=True, timeout=timeout, env=env, cwd=cwd,
    )  # fmt: skip


def one_error_line(r: subprocess.CompletedProcess, code: int = 2) -> str:
    assert r.returncode == code, (r.returncode, r.stderr)
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("liveheat: error: "), r.stderr
    assert "internal error" not in lines[0] and "Traceback" not in r.stderr
    return lines[0]


def huge_png(path: Path, side: int = 60000) -> Path:
    """A valid PNG header declaring side x side pixels (OpenCV refuses > 2^30 pixels)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 99))
        + chunk(b"IEND", b"")
    )  # fmt: skip
    return path


@pytest.fixture
def grey(tmp_path) -> Path:
    p = tmp_path / "grey.png"
    cv2.imwrite(str(p), np.full((64, 96), 128, np.uint8))
    return p


# ---- row 4: one oversized image in a folder, or alone
def test_an_oversized_image_in_a_folder_is_skipped_with_a_note(tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    for i in range(4):
        cv2.imwrite(str(folder / f"{i}.png"), np.full((48, 64, 3), 40 * i, np.uint8))
    huge_png(folder / "2b.png")
    r = cli("run", folder, "-o", tmp_path / "o.mp4", "--no-show", "--input-size", "64")
    assert r.returncode == 0, r.stderr
    assert "4 frames in, 4 out" in r.stdout
    assert r.stderr.strip().splitlines() == [
        f"liveheat: skipping unreadable image '{folder / '2b.png'}' (it declares more pixels "
        "than OpenCV decodes (2^30))"
    ]
    line = one_error_line(cli("image", huge_png(tmp_path / "h.png"), "-o", tmp_path / "x.png"))
    assert "declares more pixels than OpenCV decodes" in line


# ---- row 5: a FIFO as a source never hangs
def test_a_fifo_as_source_is_refused_at_once(tmp_path):
    fifo = tmp_path / "f.mp4"
    os.mkfifo(fifo)
    t0 = time.monotonic()
    line = one_error_line(cli("run", fifo, "-o", tmp_path / "o.mp4", "--no-show", timeout=20))
    assert "is a FIFO (named pipe), not a video file" in line
    assert time.monotonic() - t0 < 15 and not (tmp_path / "o.mp4").exists()


# ---- row 6: parser errors are exit 2, not "internal error"
def test_a_damaged_npz_map_is_a_clean_error(tmp_path, grey):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"PK\x03\x04 not really a zip")
    line = one_error_line(cli("image", grey, "-o", tmp_path / "o.png", "--heat", bad))
    assert line.endswith("cannot read map '" + str(bad) + "': not a valid .npz (zip) file")


def test_deeply_nested_labels_metadata_is_no_recursion_error():
    from liveheat.model.onnxfile import _parse_labels

    assert _parse_labels("[" * 100_000) is None
    assert _parse_labels('["cat", "dog"]') == ["cat", "dog"]


# ---- row 7: image never overwrites its input
def test_image_refuses_to_write_over_its_input(tmp_path, grey):
    before = grey.read_bytes()
    line = one_error_line(cli("image", grey, "-o", grey))
    assert "is the input image" in line
    line = one_error_line(cli("image", grey, "-o", f"{grey.parent}/./{grey.name}"))
    assert grey.read_bytes() == before


# ---- row 8: a float64 map beyond float32's range is still drawn, silently
def test_a_map_near_float64s_limits_is_drawn_without_a_warning(tmp_path, grey):
    heat = np.linspace(0.5, 1.0, 12).reshape(3, 4) * 1e308
    np.save(tmp_path / "big.npy", heat)
    r = cli("image", grey, "-o", tmp_path / "o.png", "--heat", tmp_path / "big.npy")
    assert r.returncode == 0 and r.stderr == "", r.stderr
    out = cv2.imread(str(tmp_path / "o.png"))
    src = cv2.imread(str(grey))
    assert np.abs(out.astype(int) - src).mean() > 20  # the heat is drawn, not an unchanged frame
    ref = liveheat.overlay(src, heat / 1e308)  # the same map at a tame scale
    assert np.abs(out.astype(int) - ref).max() <= 1


# ---- row 11: an empty token is an error, never "no authentication"
@pytest.mark.parametrize("how", ["flag", "env"])
def test_an_empty_token_is_an_error(tmp_path, grey, how):
    env = dict(os.environ)
    args = ["run", grey, "-o", tmp_path / "o.mp4", "--no-show", "--serve", "0"]
    if how == "flag":
        args += ["--token", ""]
    else:
        env["LIVEHEAT_TOKEN"] = ""
    line = one_error_line(cli(*args, env=env))
    assert "expected a non-empty token without spaces" in line
    assert not (tmp_path / "o.mp4").exists()
    line = one_error_line(cli(*args[:-2], "--serve", "0", "--token", "a b"))
    assert "token = 'a b'" in line


# ---- row 12: messages that say what is wrong
def test_messages_say_what_is_wrong(tmp_path, grey):
    folder = tmp_path / "dir"
    folder.mkdir()
    assert "it is a folder; give a file name such as" in one_error_line(
        cli("image", grey, "-o", f"{folder}/")
    )
    assert "it is a folder; `liveheat run" in one_error_line(
        cli("image", folder, "-o", tmp_path / "o.png")
    )
    pt = tmp_path / "model.pt"
    pt.write_bytes(b"\x80\x02 a pickled torch checkpoint")
    line = one_error_line(cli("run", grey, "-o", tmp_path / "o.mp4", "--no-show", "--model", pt))
    assert "PyTorch checkpoint, not an ONNX model; export it first" in line
    # a float32 TIFF reads as a source the way `image` reads it ([0, 1] floats)
    tif = tmp_path / "f.tiff"
    assert cv2.imwrite(str(tif), np.random.default_rng(0).random((32, 48)).astype(np.float32))
    r = cli("run", tif, "-o", tmp_path / "t.mp4", "--no-show", "--input-size", "64")
    assert r.returncode == 0 and r.stderr == "", r.stderr
    # a loopback address other than 127.0.0.1 is not "anyone who can reach this machine"
    r = cli("run", grey, "-o", tmp_path / "s.mp4", "--no-show", "--serve", "127.0.0.2:0")
    assert r.returncode == 0 and "warning" not in r.stderr, r.stderr


def test_a_blank_frame_with_the_steady_scale_is_drawn_not_an_internal_error(tmp_path, grey):
    # a map with no contrast at all (a uniform frame) once gave "internal error: norm='fixed'
    # needs vmax > vmin" from the steady scale
    r = cli("run", grey, "-o", tmp_path / "o.mp4", "--no-show", "--no-hud")
    assert r.returncode == 0 and r.stderr == "", r.stderr


# ---- the command line explains itself: did you mean, peers' flags
@pytest.mark.parametrize(
    "args, hint",
    [
        (("rnu", "x"), "did you mean 'run'?"),
        (("run", "x", "--imgsz", "3"), "--imgsz is --input-size here"),
        (("run", "x", "--show"), "--show is on by default (--no-show turns it off)"),
        (("run", "x", "--colourmap", "jet"), "--colourmap: did you mean '--colormap'?"),
        (("image", "x", "-o", "y.png", "--alpah", "1"), "--alpah: did you mean '--alpha'?"),
        (("batch", "x", "-o", "y", "--wrokers", "2"), "--wrokers: did you mean '--workers'?"),
    ],
)
def test_unknown_flags_and_commands_get_a_suggestion(args, hint):
    assert one_error_line(cli(*args)).endswith(hint)


# ---- accelerators: --device maps to providers, with a one-line fallback
def test_device_falls_back_to_the_cpu_in_one_line(tmp_path, grey):
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this onnxruntime has CUDA: the fallback is not reachable here")
    r = cli("run", grey, "-o", tmp_path / "o.mp4", "--no-show", "--device", "cuda")
    assert r.returncode == 0, r.stderr
    assert r.stderr.splitlines() == [
        "liveheat: --device cuda: this onnxruntime has no CUDAExecutionProvider (it has "
        f"{', '.join(ort.get_available_providers())}); running on the CPU (pip install "
        "onnxruntime-gpu for CUDA, onnxruntime-openvino for OpenVINO)"
    ]
    r = cli("doctor", "--no-cameras")
    assert "--device auto  cpu (CPUExecutionProvider)" in r.stdout
    line = one_error_line(cli("run", grey, "--device", "gpu"))
    assert "device = 'gpu' from --device: expected one of auto, cpu, cuda" in line


# ---- row 3: a stream that accepts and never answers ends cleanly, within --open-timeout
@pytest.mark.parametrize("scheme", ["http", "rtsp"])
def test_a_silent_stream_ends_cleanly_within_the_open_timeout(tmp_path, scheme):
    import socket

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)  # accepts (the kernel does) and never answers
    port = server.getsockname()[1]
    try:
        t0 = time.monotonic()
        r = cli("run", f"{scheme}://127.0.0.1:{port}/", "-o", tmp_path / "a.mp4", "--no-show",
                "--open-timeout", "1", timeout=30)  # fmt: skip
        took = time.monotonic() - t0
    finally:
        server.close()
    line = one_error_line(r)  # exit 2, not SIGABRT's 134 ("terminate called ...")
    assert "did not open within 1 s" in line and "terminate" not in r.stderr
    assert took < 10 and not (tmp_path / "a.mp4").exists()
    line = one_error_line(cli("run", "x.mp4", "--open-timeout", "0"))
    assert "open_timeout = 0 from --open-timeout: expected a number in (0, 600]" in line


# ---- row 1: a corrupt JPEG in an MJPEG stream is one skipped frame, not a lost stream
@pytest.mark.parametrize("damage", ["garbage", "short"])
def test_corrupt_parts_of_an_mjpeg_stream_are_skipped_and_counted(tmp_path, damage):
    from tests.helpers.mjpeg_server import MjpegServer

    with MjpegServer(liveheat.bundled_clip(), fps=15, limit=45, loop=True) as srv:
        for i in range(5, 45, 10):  # one part in ten: garbage after the JPEG marker, or cut
            good = srv.jpegs[i]
            srv.jpegs[i] = (
                good[:2] + bytes(range(256)) * 8 if damage == "garbage" else good[: len(good) // 3]
            )
        r = cli("run", srv.url, "-o", tmp_path / "l.mp4", "--no-show", "--input-size", "64",
                "--max-frames", "36", timeout=60)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "reconnecting" not in r.stderr and "lost" not in r.stderr, r.stderr
    assert re.search(r"\d+ frames in, 36 out", r.stdout), r.stdout
    if damage == "garbage":  # (a JPEG cut short still decodes: its frame is kept)
        m = re.search(r"skipped (\d+) damaged frames of '(http[^']+)'", r.stdout)
        assert m and 3 <= int(m.group(1)) <= 6, r.stdout  # one part in ten of the ~40 read


# ---- row 2: a flood of idle sockets before authentication does not shut out a real request
def test_a_request_with_the_token_is_answered_during_a_flood_of_idle_sockets():
    import json
    import socket
    import threading
    import urllib.request

    from liveheat.outputs.stream.server import StreamServer

    stop = threading.Event()
    with StreamServer(token="s3cret") as srv:
        host, port = srv.host, srv.port
        socks = []
        for _ in range(60):
            s = socket.create_connection((host, port), timeout=5)
            s.sendall(b"GET /stats HTTP/1.0\r\n")
            socks.append(s)

        def dribble() -> None:  # one byte a second on every socket, as the outside test did
            while not stop.wait(1.0):
                for s in socks:
                    try:
                        s.sendall(b"X")
                    except OSError:
                        pass

        t = threading.Thread(target=dribble, daemon=True)
        t.start()
        try:
            time.sleep(0.5)
            answered = []
            for _ in range(3):  # and again while the flood goes on
                t0 = time.monotonic()
                url = f"{srv.url}stats?token=s3cret"
                with urllib.request.urlopen(url, timeout=5) as resp:
                    body = json.loads(resp.read())
                answered.append((resp.status, time.monotonic() - t0, "clients" in body))
                time.sleep(0.3)
            denied = urllib.request.Request(f"{srv.url}stats")
            try:
                urllib.request.urlopen(denied, timeout=5)
                status = 200
            except urllib.error.HTTPError as e:
                status = e.code
        finally:
            stop.set()
            t.join(timeout=5)
            for s in socks:
                s.close()
    assert [a[0] for a in answered] == [200, 200, 200] and all(a[2] for a in answered)
    assert max(a[1] for a in answered) < 2.0, answered
    assert status == 401  # the flood did not open the door either


# ---- row 9: a bad live change is undone alone, a good one posted with it stays
def test_a_bad_live_change_does_not_undo_a_good_one_that_came_with_it():
    s = liveheat.Settings(input_size=64, hud=False)
    ann = liveheat.Annotator(s)
    with liveheat.open_source(liveheat.bundled_clip()) as src:
        frames = [f for _, f in zip(range(3), src, strict=False)]
    ann.annotate(frames[0])
    s.update(method="channel:99999", alpha=0.7)  # between two frames, as two POSTs would be
    a = ann.annotate(frames[1])
    assert a.note and "method='channel:99999'" in a.note and "alpha" not in a.note
    assert (s.method, s.alpha) == ("cam", 0.7)
    a2 = ann.annotate(frames[2])  # drawn at the new alpha, with the old method's map
    lo, hi = a2.scale
    drawn = liveheat.overlay(frames[2].image, a2.heat, alpha=0.7, norm="fixed", vmin=lo, vmax=hi)
    assert a2.key[0] == "cam" and np.array_equal(a2.image, drawn)


# ---- shell completion (argcomplete): verbs, flags, closed vocabularies
@pytest.mark.parametrize(
    "line, want",
    [
        ("liveheat ba", {"batch"}),
        ("liveheat run clip.mp4 --dev", {"--device"}),
        ("liveheat run clip.mp4 --device c", {"cpu", "cuda", "coreml"}),
        ("liveheat run clip.mp4 --colormap inf", {"inferno"}),
    ],
)
def test_the_shell_completes_verbs_flags_and_choices(tmp_path, line, want):
    out = tmp_path / "completions"
    env = dict(
        os.environ, _ARGCOMPLETE="1", _ARGCOMPLETE_IFS="\n", COMP_LINE=line,
        COMP_POINT=str(len(line)), _ARGCOMPLETE_STDOUT_FILENAME=str(out),
    )  # fmt: skip
    r = subprocess.run([sys.executable, "-m", "liveheat"], env=env, capture_output=True,
                       text=True, timeout=60)  # fmt: skip
    assert r.returncode == 0, r.stderr
    got = {w.strip() for w in out.read_text().split("\n") if w.strip()}
    assert want <= got, got
