"""`liveheat batch` / `annotate_batch` with real parts: real clips cut from the bundled video,
a corrupt file, images of different sizes, the local pool of processes, and a real local Ray
(started once per test session, `num_cpus=2`).
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

import liveheat
from liveheat.pipeline.batch import MANIFEST, collect, read_manifest
from tests.conftest import clip_frames
from tests.helpers.procs import reaped
from tests.helpers.videos import write_video

FAST = ("--input-size", "64", "--no-hud")
SETTINGS = {"input_size": 64, "hud": False}
IMAGE_SIZES = {"cat.png": (300, 451), "rocket.jpg": (640, 427), "deep/tiny.bmp": (37, 53)}


def _cut(path: Path, start: int, n: int, size=(320, 180)) -> Path:
    frames = [cv2.resize(f, size, interpolation=cv2.INTER_AREA) for f in clip_frames(n, start)]
    return write_video(path, frames, 25.0)


@pytest.fixture(scope="module")
def archive(tmp_path_factory) -> Path:
    """clips/ with three real clips (one in a subfolder), a corrupt .mp4, a text file, and
    images/ of three sizes and formats."""
    root = tmp_path_factory.mktemp("archive")
    (root / "clips" / "day2").mkdir(parents=True)
    _cut(root / "clips" / "a.mp4", 0, 12)
    _cut(root / "clips" / "b.mp4", 40, 9)
    _cut(root / "clips" / "day2" / "c.mp4", 80, 7)
    (root / "clips" / "broken.mp4").write_bytes(np.random.default_rng(1).bytes(20000))
    (root / "clips" / "notes.txt").write_text("not a video")
    frames = clip_frames(3, 20)
    for (name, (h, w)), frame in zip(IMAGE_SIZES.items(), frames, strict=True):
        p = root / "images" / name
        p.parent.mkdir(parents=True, exist_ok=True)
        assert cv2.imwrite(str(p), cv2.resize(frame, (w, h)))
    return root


def batch_cmd(*args, timeout=300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "liveheat", "batch", *map(str, args)],
        capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip


def frame_count(path: Path) -> int:
    with av.open(str(path)) as f:
        return sum(1 for _ in f.decode(video=0))


def manifest(outdir: Path) -> list[dict]:
    return [json.loads(line) for line in (outdir / MANIFEST).read_text().splitlines()]


def stderr_only_liveheat(stderr: str) -> None:
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert all(ln.startswith("liveheat: ") for ln in lines), stderr


@pytest.fixture(scope="module")
def first_run(archive, tmp_path_factory):
    out = tmp_path_factory.mktemp("out") / "annotated"
    r = batch_cmd(archive / "clips", archive / "images", "-o", out, *FAST)
    return out, r


def test_every_good_file_is_annotated_and_the_corrupt_one_is_failed(archive, first_run):
    out, r = first_run
    assert r.returncode == 1, r.stderr  # one file failed
    stderr_only_liveheat(r.stderr)
    assert "1 of 7 files failed" in r.stderr
    # the trees are mirrored, videos keep every frame, images their own size and format
    assert frame_count(out / "a.mp4") == 12
    assert frame_count(out / "b.mp4") == 9
    assert frame_count(out / "day2" / "c.mp4") == 7
    for name, (h, w) in IMAGE_SIZES.items():
        image = cv2.imread(str(out / name))
        assert image is not None and image.shape == (h, w, 3), name
        src = cv2.imread(str(archive / "images" / name))
        assert np.abs(image.astype(int) - src).mean() > 5  # a heatmap was drawn on it
    assert (out / "rocket.jpg").read_bytes()[:2] == b"\xff\xd8"  # still a JPEG
    assert not (out / "broken.mp4").exists() and not (out / "notes.txt").exists()
    recs = {r["key"]: r for r in manifest(out)}
    assert set(recs) == {"a.mp4", "b.mp4", "day2/c.mp4", "broken.mp4", *IMAGE_SIZES}
    assert recs["broken.mp4"]["status"] == "failed"
    assert "cannot open video file" in recs["broken.mp4"]["error"]
    assert recs["a.mp4"]["status"] == "ok" and recs["a.mp4"]["frames"] == 12
    assert recs["a.mp4"]["classes"] and recs["a.mp4"]["fps"] > 0
    assert recs["a.mp4"]["bytes"] == (out / "a.mp4").stat().st_size
    # the summary table
    assert "files ok       6" in r.stdout and "files failed   1" in r.stdout
    assert "frames         31" in r.stdout  # 12 + 9 + 7 + 3 images


def test_a_rerun_skips_what_is_done_and_force_redoes_it(archive, first_run):
    out, _ = first_run
    mtimes = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.suffix != ".jsonl"}
    r = batch_cmd(archive / "clips", archive / "images", "-o", out, *FAST)
    assert r.returncode == 1  # the corrupt file is tried again, and fails again
    assert "files skipped  6" in r.stdout
    assert {p: p.stat().st_mtime_ns for p in mtimes} == mtimes  # nothing rewritten
    last = {}
    for rec in manifest(out):
        last[rec["key"]] = rec
    assert sum(r["status"] == "skipped" for r in last.values()) == 6
    # a file changed since (here: cut short) is no longer complete: it is done again
    (out / "b.mp4").write_bytes((out / "b.mp4").read_bytes()[:500])
    r = batch_cmd(archive / "clips" / "b.mp4", "-o", out, *FAST)
    assert r.returncode == 0, r.stderr
    assert frame_count(out / "b.mp4") == 9
    r = batch_cmd(archive / "clips" / "a.mp4", "-o", out, "--force", *FAST)
    assert r.returncode == 0 and "files ok       1" in r.stdout


def test_inputs_globs_lists_and_name_collisions(archive, tmp_path):
    lst = tmp_path / "list.txt"
    lst.write_text(f"# a comment\n{archive / 'clips' / 'a.mp4'}\n\n{archive / 'images'}\n")
    other = tmp_path / "other"
    other.mkdir()
    _cut(other / "a.mp4", 5, 3)  # the same name as clips/a.mp4, from another root
    said = []
    jobs = collect(
        [f"@{lst}", str(other / "a.mp4"), str(archive / "clips" / "**" / "*.mp4")],
        tmp_path / "out",
        say=said.append,
    )
    keys = [j.key for j in jobs]
    # the list's file, its folder's images (a folder's files before its subfolders'), the
    # colliding name renamed, the glob's files
    # relative to the glob's root (a.mp4 is not taken twice)
    assert keys == [
        "a.mp4", "cat.png", "rocket.jpg", "deep/tiny.bmp", "a-2.mp4",
        "b.mp4", "broken.mp4", "day2/c.mp4",
    ]  # fmt: skip
    assert any("a-2.mp4" in s and "a.mp4" in s for s in said), said
    assert jobs[4].input == str(other / "a.mp4")
    # an OUTDIR inside an input folder is never read back as input
    inside = collect([str(archive / "images")], archive / "images" / "deep")
    assert [j.key for j in inside] == ["cat.png", "rocket.jpg"]


@pytest.mark.parametrize(
    "args, message",
    [
        (("nowhere/", "-o", "{tmp}/o"), "no such file or folder: 'nowhere/'"),
        (("{tmp}/*.nothing", "-o", "{tmp}/o"), "no file matches"),
        (("{clip}", "-o", "{clip}"), "is a file"),
        (("{clip}", "-o", "{tmp}/o", "--workers", "0"), "--workers must be >= 1"),
        (("{clip}", "-o", "{tmp}/o", "--alpha", "3"), "alpha"),
        (("@{tmp}/missing.txt", "-o", "{tmp}/o"), "cannot read the list"),
        (("{tmp}/notes.txt", "-o", "{tmp}/o"), "no video or image among the inputs"),
    ],
)
def test_bad_arguments_are_one_line_and_exit_2(tmp_path, args, message):
    (tmp_path / "notes.txt").write_text("x")
    clip = liveheat.bundled_clip()
    r = batch_cmd(*(a.format(tmp=tmp_path, clip=clip) for a in args))
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert r.stderr.count("\n") == 1 and r.stderr.startswith("liveheat: error:"), r.stderr
    assert message in r.stderr


def test_ray_and_the_local_pool_give_the_same_results(archive, tmp_path, ray_session):
    # the drawn frames are compared through MJPEG at its finest quantiser: x264 here does not
    # give the same bits for the same frames from run to run when onnxruntime runs between
    # its calls (small frames; seen in `liveheat run` as well), so H.264 is compared by PSNR
    settings = liveheat.Settings(dump_maps="yes", codec="mjpeg", crf=2, **SETTINGS)
    inputs = [archive / "clips", archive / "images"]
    local = liveheat.annotate_batch(inputs, tmp_path / "local", settings=settings, workers=2)
    on_ray = liveheat.annotate_batch(inputs, tmp_path / "ray", settings=settings, ray=True)
    for rep in (local, on_ray):
        assert (rep.ok, rep.failed, rep.skipped) == (6, 1, 0)
    assert on_ray.ray_start_s == 0.0  # the session's Ray was used as it was
    for key in ("a.mp4", "b.mp4", "day2/c.mp4", *IMAGE_SIZES):
        a = np.load(tmp_path / "local" / (key + ".maps.npz"))
        b = np.load(tmp_path / "ray" / (key + ".maps.npz"))
        assert a["maps"].shape[0] >= 1
        for name in ("maps", "raw", "targets", "frames"):
            assert np.array_equal(a[name], b[name]), (key, name)  # bitwise
    for key in ("a.mp4", "b.mp4", "day2/c.mp4"):
        with (
            av.open(str(tmp_path / "local" / key)) as fa,
            av.open(str(tmp_path / "ray" / key)) as fb,
        ):
            pairs = zip(fa.decode(video=0), fb.decode(video=0), strict=True)
            for x, y in pairs:
                d = np.abs(x.to_ndarray(format="bgr24").astype(int) - y.to_ndarray(format="bgr24"))
                assert d.max() <= 1, key
    for key, (h, w) in IMAGE_SIZES.items():
        x, y = cv2.imread(str(tmp_path / "local" / key)), cv2.imread(str(tmp_path / "ray" / key))
        assert x.shape == y.shape == (h, w, 3)
        assert np.abs(x.astype(int) - y).max() <= 1
    classes = {r["key"]: r["classes"] for r in local.records}
    assert classes == {r["key"]: r["classes"] for r in on_ray.records}
    # the default H.264 files: the same pictures within the codec's loss
    h264 = liveheat.Settings(**SETTINGS)
    clip = [archive / "clips" / "a.mp4"]
    liveheat.annotate_batch(clip, tmp_path / "local264", settings=h264, workers=1)
    liveheat.annotate_batch(clip, tmp_path / "ray264", settings=h264, ray=True)
    with av.open(str(tmp_path / "local264" / "a.mp4")) as fa:
        with av.open(str(tmp_path / "ray264" / "a.mp4")) as fb:
            pairs = list(zip(fa.decode(video=0), fb.decode(video=0), strict=True))
    assert len(pairs) == 12
    for x, y in pairs:
        diff = x.to_ndarray(format="bgr24").astype(float) - y.to_ndarray(format="bgr24")
        assert 10 * np.log10(255**2 / max(np.mean(diff**2), 1e-9)) > 35


def test_ctrl_c_keeps_what_is_done_and_a_rerun_completes_the_set(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    for i in range(6):
        _cut(src / f"clip{i}.mp4", 10 * i, 30, size=(640, 360))
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "liveheat", "batch", str(src), "-o", str(out), "--workers", "1"]
    with reaped(subprocess.Popen(
        [*cmd, *FAST], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )) as proc:  # fmt: skip
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if (out / MANIFEST).exists() and (out / MANIFEST).read_text().count("\n") >= 1:
                break
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    stderr_only_liveheat(stderr)
    done = manifest(out)
    assert 1 <= len(done) < 6, done  # stopped in the middle
    assert not [p for p in out.iterdir() if ".tmp" in p.name]  # no temporary file left
    assert sorted(p.name for p in out.glob("*.mp4")) == sorted(r["key"] for r in done)
    r = subprocess.run([*cmd, *FAST], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    recs = manifest(out)
    ok = [r["key"] for r in recs if r["status"] == "ok"]
    assert sorted(ok) == [f"clip{i}.mp4" for i in range(6)]  # each exactly once, none missing
    assert sorted(r["key"] for r in recs if r["status"] == "skipped") == sorted(
        r["key"] for r in done
    )
    for i in range(6):
        assert frame_count(out / f"clip{i}.mp4") == 30
    assert read_manifest(out / MANIFEST).keys() == {f"clip{i}.mp4" for i in range(6)}


def test_one_bar_for_the_batch_with_files_frames_and_rate(archive, tmp_path, capsys):
    rep = liveheat.annotate_batch(
        [archive / "clips" / "a.mp4", archive / "images"], tmp_path / "o",
        settings=liveheat.Settings(**SETTINGS), workers=1, progress=True,
    )  # fmt: skip
    assert (rep.ok, rep.failed) == (4, 0) and rep.frames == 15
    err = capsys.readouterr().err
    # tqdm's last refresh: files done of all, frames done of the estimate, the rate
    assert re.search(r"4/4 files: 100%\|.*\| 15/15 \[[\d:]+<[\d:]+, +[\d.]+ ?frame/s\]", err), err
