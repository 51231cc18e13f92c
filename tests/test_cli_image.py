"""`liveheat image`: real images in, overlay out; bad input gives one error line and exit 2."""

from __future__ import annotations

import subprocess
import sys

import cv2
import numpy as np
import pytest
import skimage.data

import liveheat


def run_cli(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "liveheat", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
    )


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    d = tmp_path_factory.mktemp("img")
    cat = cv2.cvtColor(skimage.data.chelsea(), cv2.COLOR_RGB2BGR)
    cv2.imwrite(str(d / "cat.png"), cat)
    cv2.imwrite(str(d / "grey.png"), skimage.data.camera())
    bgra = cv2.cvtColor(cat, cv2.COLOR_BGR2BGRA)
    bgra[:, :, 3] = 128
    cv2.imwrite(str(d / "bgra.png"), bgra)
    cv2.imwrite(str(d / "deep.png"), (skimage.data.camera().astype(np.uint16) * 257))
    heat = np.zeros((7, 7), np.float32)
    heat[1:3, 4:6] = 1.0
    np.save(d / "heat.npy", heat)
    np.savez(d / "one.npz", heat=heat)
    np.savez(d / "two.npz", a=heat, b=heat)
    np.save(d / "cube.npy", np.zeros((3, 4, 5)))
    cv2.imwrite(str(d / "heat.png"), (heat * 255).astype(np.uint8))
    (d / "garbage.npy").write_bytes(b"not numpy at all")
    return d


@pytest.mark.parametrize("image", ["cat.png", "grey.png", "bgra.png", "deep.png"])
@pytest.mark.parametrize("heat", ["heat.npy", "one.npz", "heat.png"])
def test_writes_overlay_for_every_image_and_map_kind(images, tmp_path, image, heat):
    out = tmp_path / "out.png"
    r = run_cli("image", images / image, "-o", out, "--heat", images / heat, "--alpha", "0.6")
    assert r.returncode == 0, r.stderr
    got = cv2.imread(str(out), cv2.IMREAD_UNCHANGED)
    src = cv2.imread(str(images / image), cv2.IMREAD_UNCHANGED)
    assert got.shape[:2] == src.shape[:2]
    assert got.shape[2] == (4 if image == "bgra.png" else 3)
    h, w = got.shape[:2]
    # heat sits in the top right: that corner changed, the bottom left did not change much
    hot = got[int(h * 0.2) : int(h * 0.35), int(w * 0.65) : int(w * 0.8), :3].astype(int)
    ref_src = src if src.ndim == 3 else cv2.cvtColor(src, cv2.COLOR_GRAY2BGR)
    ref_src = cv2.convertScaleAbs(ref_src, alpha=1 / 257) if ref_src.dtype == np.uint16 else ref_src
    ref = ref_src[int(h * 0.2) : int(h * 0.35), int(w * 0.65) : int(w * 0.8), :3].astype(int)
    assert np.abs(hot - ref).mean() > 20
    expect = liveheat.overlay(src, np.load(images / "heat.npy"), alpha=0.6)
    if heat != "heat.png":
        assert np.array_equal(got, expect)


def test_panels_flag_makes_three_panels_and_a_colour_bar(images, tmp_path):
    out = tmp_path / "p.jpg"
    r = run_cli(
        "image",
        images / "cat.png",
        "-o",
        out,
        "--heat",
        images / "heat.npy",
        "--panels",
        "--mode",
        "transparent",
        "--colormap",
        "turbo",
    )
    assert r.returncode == 0, r.stderr
    got = cv2.imread(str(out))
    assert got.shape[0] == 300 and got.shape[1] > 3 * 451


@pytest.mark.parametrize(
    "args, message",
    [
        (["missing.png", "--heat", "heat.npy"], "no such file"),
        (["heat.npy", "--heat", "heat.npy"], "not an image"),
        (["cat.png", "--heat", "missing.npy"], "no such file"),
        (["cat.png", "--heat", "garbage.npy"], "cannot read map"),
        (["cat.png", "--heat", "two.npz"], "expected exactly one"),
        (["cat.png", "--heat", "cube.npy"], "(3, 4, 5)"),
        (["cat.png", "--heat", "heat.npy", "--colormap", "jt"], "did you mean 'jet'"),
        (["cat.png", "--heat", "heat.npy", "--mode", "glow"], "mode = 'glow' from --mode"),
        (["cat.png", "--heat", "heat.npy", "--alpha", "1.5"], "alpha"),
        (["cat.png", "--heat", "heat.npy", "--alpha", "lots"], "expected a number"),
    ],
)
def test_bad_input_one_line_exit_2_no_output(images, tmp_path, args, message):
    out = tmp_path / "out.png"
    args = [images / a if (images / a).exists() or a.startswith("missing") else a for a in args]
    r = run_cli("image", args[0], "-o", out, *args[1:])
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("liveheat: error:"), r.stderr
    assert message in lines[0]
    assert "Traceback" not in r.stderr
    assert not out.exists() and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("out", ["no/such/dir/o.png", "o.unknownext"])
def test_unwritable_output_fails_cleanly(images, tmp_path, out):
    r = run_cli("image", images / "cat.png", "-o", tmp_path / out, "--heat", images / "heat.npy")
    assert r.returncode == 2 and r.stderr.startswith("liveheat: error: cannot write")
    assert list(tmp_path.iterdir()) == []


def test_output_that_is_a_folder_leaves_no_partial_file(images, tmp_path):
    (tmp_path / "taken.png").mkdir()
    r = run_cli(
        "image", images / "cat.png", "-o", tmp_path / "taken.png", "--heat", images / "heat.npy"
    )
    assert r.returncode == 2 and "cannot write" in r.stderr and "Traceback" not in r.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["taken.png"]
    assert list((tmp_path / "taken.png").iterdir()) == []
