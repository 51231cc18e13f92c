"""`liveheat doctor` reports this machine truthfully; config files and presets layer correctly.

Doctor values are checked against the libraries themselves; config errors name key and file.
"""

from __future__ import annotations

import hashlib
import re
import sys
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort
import pytest

from liveheat._common.system import usable_cores
from liveheat.cli import main
from liveheat.doctor import EXPECTED_SHA256, collect, format_report, probe_cameras
from liveheat.errors import LiveheatError
from liveheat.model.backbone import Backbone
from liveheat.model.bundled import BUNDLED, models_dir
from liveheat.settings.config import (
    build_settings,
    check_value,
    load_config,
    parse_serve,
    preset_values,
)
from liveheat.settings.fields import Settings


def _sections(text: str) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    current = None
    for line in text.splitlines():
        if m := re.fullmatch(r"\[(.+)\]", line):
            current = out.setdefault(m.group(1), {})
        elif current is not None and line.startswith("  "):
            key, _, value = line.strip().partition("  ")
            current[key.strip()] = value.strip()
    return out


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> dict[str, dict[str, str]]:
    import os

    saved = {k: os.environ.pop(k, None) for k in ("DISPLAY", "WAYLAND_DISPLAY")}
    os.environ["LIVEHEAT_TOKEN"] = "supersecret-token"
    try:
        import contextlib
        import io

        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            assert main(["doctor"]) == 0
    finally:
        os.environ.pop("LIVEHEAT_TOKEN", None)
        for k, v in saved.items():
            if v is not None:
                os.environ[k] = v
    text = buf.getvalue()
    assert "supersecret-token" not in text  # a secret is never printed, only "set"
    return _sections(text)


# ---------------------------------------------------------------------- doctor
def test_doctor_reports_library_versions_and_gui_backend(report):
    assert report["opencv"]["version"] == cv2.__version__
    gui = report["opencv"]["gui backend"]
    assert re.search(rf"GUI:\s+{re.escape(gui)}", cv2.getBuildInformation(), re.IGNORECASE)
    assert report["onnxruntime"]["version"] == ort.__version__
    assert "CPUExecutionProvider" in report["onnxruntime"]["providers"].split(", ")
    assert report["system"]["numpy"] == np.__version__
    assert report["system"]["cpu cores"].startswith(f"{usable_cores()} usable")


def test_doctor_reports_the_blas_threads_the_libraries_report(report):
    from liveheat._common import blas

    row = report["system"]["blas threads"]
    counts = re.findall(r"(\d+) in (\S+?),? ", row + " ")
    # numpy's OpenBLAS and the copy inside OpenCV's wheel are both loaded by now
    assert len(counts) >= 2, row
    assert row.endswith(f"({blas.who_chose()})"), row


def test_doctor_lists_pyav_ffmpeg_the_encoders_and_what_each_extension_uses(report, tmp_path):
    import av

    from liveheat.outputs.codecs import CONTAINERS, DOCTOR_ENCODERS, choose
    from liveheat.outputs.video import VideoSink

    video = report["video files (PyAV)"]
    assert video["pyav"] == av.__version__ and video["ffmpeg"].startswith(av.ffmpeg_version_info)
    assert {k for k in video if k.startswith("encoder ")} == {
        f"encoder {family}" for family, _ in DOCTOR_ENCODERS
    }
    assert video["encoder h264"] == "libx264" and video["encoder aac"] == "aac"
    assert set(CONTAINERS) <= set(video)
    assert video[".mp4"].startswith("h264 (libx264 superfast, crf 23); sound: copy aac")
    assert "plays in browsers" in video[".mp4"] and "plays in browsers" in video[".webm"]
    assert video[".webm"].startswith("vp9 (libvpx-vp9") and video[".avi"].startswith("mjpeg")
    for ext in (".mp4", ".webm", ".avi"):  # a second, independent try agrees with the report
        path = tmp_path / f"check{ext}"
        with VideoSink(path, fps=25.0) as sink:
            for i in range(5):
                sink.write(np.full((64, 96, 3), 40 * i, np.uint8))
        with av.open(str(path)) as f:
            name = f.streams.video[0].codec_context.codec.canonical_name
            works = sum(1 for _ in f.decode(video=0)) == 5
        assert name == choose(str(path)).codec.name
        assert video[ext].endswith(f"writes + reads back: {'yes' if works else 'no'}"), ext


def test_doctor_lists_bundled_models_with_true_checksums_and_sizes(report):
    models = report["bundled models"]
    assert models["folder"] == str(models_dir())
    for variant, name in BUNDLED.items():
        path = models_dir() / name
        value = models[f"{name} ({variant})"]
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        assert value == f"{path.stat().st_size / 1e6:.1f} MB  sha256 {digest}  ok"


def test_doctor_expects_the_digests_the_model_card_lists():
    card = (Path(__file__).parents[1] / "models" / "README.md").read_text(encoding="utf-8")
    listed = dict(re.findall(r"^\| `([\w.]+\.onnx)` \|.*\| `([0-9a-f]{64})` \|$", card, re.M))
    assert listed == EXPECTED_SHA256 and set(listed) == set(BUNDLED.values())


def test_doctor_flags_a_model_whose_checksum_does_not_match(tmp_path, monkeypatch):
    (tmp_path / BUNDLED["fp32"]).write_bytes(b"not the exported model")  # int8: absent
    (tmp_path / "mine.onnx").write_bytes(b"a model of the user's own")
    monkeypatch.setenv("LIVEHEAT_MODELS", str(tmp_path))
    from liveheat.doctor import _models

    rows = dict(_models())
    fp32 = rows[f"{BUNDLED['fp32']} (fp32)"]
    digest = hashlib.sha256(b"not the exported model").hexdigest()
    assert fp32.startswith(f"0.0 MB  sha256 {digest}  MISMATCH (expected ")
    assert EXPECTED_SHA256[BUNDLED["fp32"]] in fp32
    assert rows[f"{BUNDLED['int8']} (int8)"] == "MISSING"
    own = hashlib.sha256(b"a model of the user's own").hexdigest()
    assert rows["mine.onnx (extra)"] == f"0.0 MB  sha256 {own}"  # nothing to compare with


def _doctor(capsys) -> tuple[int, str, str]:
    status = main(["doctor", "--no-cameras"])
    out, err = capsys.readouterr()
    return status, out, err


def _copy_models(folder: Path, names) -> None:
    import shutil

    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        shutil.copyfile(models_dir() / name, folder / name)


def test_doctor_exits_1_when_a_bundled_model_is_missing(tmp_path, monkeypatch, capsys):
    _copy_models(tmp_path / "m", [BUNDLED["fp32"]])  # a real fp32 copy; int8 absent
    monkeypatch.setenv("LIVEHEAT_MODELS", str(tmp_path / "m"))
    status, out, err = _doctor(capsys)
    assert status == 1
    models = _sections(out)["bundled models"]
    assert models[f"{BUNDLED['fp32']} (fp32)"].endswith("  ok")
    assert models[f"{BUNDLED['int8']} (int8)"] == "MISSING"
    assert "[environment]" in out  # the whole report first, the verdict after it
    assert err.count("\n") == 1 and err.startswith("liveheat: error: ")
    assert f"{BUNDLED['int8']} (int8) missing" in err and "fp32" not in err
    assert "export_efficientnet_lite0.py" in err and "LIVEHEAT_MODELS" in err


def test_doctor_exits_1_when_a_bundled_model_is_corrupt(tmp_path, monkeypatch, capsys):
    folder = tmp_path / "m"
    _copy_models(folder, BUNDLED.values())
    data = bytearray((folder / BUNDLED["int8"]).read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte in a real copy
    (folder / BUNDLED["int8"]).write_bytes(bytes(data))
    monkeypatch.setenv("LIVEHEAT_MODELS", str(folder))
    status, out, err = _doctor(capsys)
    assert status == 1
    models = _sections(out)["bundled models"]
    assert models["folder"] == str(folder)
    assert models[f"{BUNDLED['fp32']} (fp32)"].endswith("  ok")
    digest = hashlib.sha256(bytes(data)).hexdigest()
    assert models[f"{BUNDLED['int8']} (int8)"].startswith(f"5.1 MB  sha256 {digest}  MISMATCH")
    assert "[environment]" in out
    assert err == (
        f"liveheat: error: {BUNDLED['int8']} (int8) checksum mismatch: reinstall liveheat, "
        "re-export with `python scripts/export_efficientnet_lite0.py` in a checkout, "
        "or point LIVEHEAT_MODELS at good copies\n"
    )


def test_doctor_exits_0_with_intact_copies_and_an_extra_model(tmp_path, monkeypatch, capsys):
    folder = tmp_path / "m"
    _copy_models(folder, BUNDLED.values())
    (folder / "mine.onnx").write_bytes(b"a model of the user's own")  # not judged
    monkeypatch.setenv("LIVEHEAT_MODELS", str(folder))
    status, out, err = _doctor(capsys)
    assert (status, err) == (0, "")
    assert _sections(out)["bundled models"]["mine.onnx (extra)"].startswith("0.0 MB  sha256 ")


@pytest.mark.parametrize("broken", ["onnxruntime", "cv2"])
def test_doctor_reports_a_library_that_does_not_import(monkeypatch, broken):
    monkeypatch.setitem(sys.modules, broken, None)  # `import broken` now raises ImportError
    sections = _sections(format_report(collect(cameras=True)))
    section = "onnxruntime" if broken == "onnxruntime" else "opencv"
    assert sections[section]["import"].startswith("import failed: ModuleNotFoundError: ")
    if broken == "cv2":
        assert sections["video files (PyAV)"]["write + read back"] == (
            "skipped: OpenCV did not import (see above)"
        )
        assert sections["cameras (indices 0-3)"]["skipped"].startswith("OpenCV")
    assert sections["system"]["numpy"] == np.__version__  # the rest is still reported
    assert sections["bundled models"]["folder"] == str(models_dir())


def test_doctor_reports_no_display_and_hides_the_token(report):
    assert report["display"]["window"].startswith("no: ")
    assert report["environment"]["LIVEHEAT_TOKEN"] == "set"
    assert report["environment"]["DISPLAY"] == "-"


@pytest.mark.skipif(bool(list(Path("/dev").glob("video*"))), reason="this machine has cameras")
def test_doctor_finds_no_camera_here_without_opening_any(report):
    assert report["cameras (indices 0-3)"]["cameras"] == "none found"
    assert probe_cameras(timeout=1.0) == ([], "no /dev/video* devices")


# ---------------------------------------------------------------------- presets
def test_edge_preset_values():
    edge = preset_values("edge")
    assert edge["model"] == "int8"
    assert edge["threads"] == max(1, usable_cores() - 1)
    assert edge["input_size"] < 224 and edge["input_size"] % 32 == 0
    assert edge["every"] == 2 and 0 < edge["smooth"] < 1
    with pytest.raises(LiveheatError, match=r"unknown preset 'edg'; did you mean 'edge'"):
        preset_values("edg")


def test_edge_preset_runs_the_int8_model_at_the_smaller_input():
    s = build_settings(preset="edge")
    bb = Backbone(s.model, threads=s.threads, input_size=s.input_size)
    cap = cv2.VideoCapture(str(Path(__file__).parents[1] / "liveheat/data/bigbuckbunny.mp4"))
    ok, frame = cap.read()
    cap.release()
    assert ok
    feats = bb(frame)
    fp32 = Backbone(None)(frame)
    assert feats.maps.shape[1:] != fp32.maps.shape[1:]  # a smaller input: a coarser map
    assert feats.maps.shape[1] * 32 == s.input_size  # 160 px in -> 5x5 cells at stride 32
    assert np.isfinite(feats.maps).all()


# ---------------------------------------------------------------------- config files
def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "liveheat.toml"
    p.write_text(text, encoding="utf-8")
    return p


def test_config_keys_with_dashes_or_underscores_and_checked_types(tmp_path):
    p = _write(
        tmp_path,
        'preset = "edge"\nmax-fps = 10\nalpha = 1\ncolormap = "turbo"\npanels = true\n'
        'serve = 8080\ntarget = 281\nmethod = "channel:12"\n',
    )
    cfg = load_config(p)
    assert cfg == {
        "preset": "edge",
        "max_fps": 10.0,
        "alpha": 1.0,
        "colormap": "turbo",
        "panels": True,
        "serve": "8080",
        "target": 281,
        "method": "channel:12",
    }
    assert isinstance(cfg["max_fps"], float)


@pytest.mark.parametrize(
    "text, message",
    [
        ("xyz = 1", r"^unknown key 'xyz' in liveheat\.toml; valid: model, layer, method, "),
        ("colourmap = 'jet'", r"unknown key 'colourmap' in liveheat\.toml; did you mean 'colo"),
        ("alpha = 'high'", r"^alpha = 'high' in liveheat\.toml: expected a number$"),
        ("alpha = 1.5", r"alpha = 1\.5 in liveheat\.toml: expected a number in \[0, 1\]"),
        ("every = 1.5", r"every = 1\.5 in liveheat\.toml: expected an integer$"),
        ("every = 0", r"expected an integer in \[1, 1000\]"),
        (
            "every = 100000000000000000000000",
            r"every = 1\d+ in liveheat\.toml: expected an integer in \[1, 1000\]",
        ),
        ('method = "channel:3\\n"', r"method = 'channel:3\\n' in liveheat\.toml: expected one of"),
        ("method = 'channel:\u0663'", r"method = 'channel:\u0663' in liveheat\.toml: expected"),
        ("method = 'channel:'", r"expected one of cam, eigen, mean, max, norm or channel:K"),
        ("no-show = true", r"^unknown key 'no-show' in liveheat\.toml; write show = false$"),
        ("no_hud = true", r"^unknown key 'no_hud' in liveheat\.toml; write hud = false$"),
        (
            "max-frames = 10",
            r"^unknown key 'max-frames' in liveheat\.toml; max-frames is a command",
        ),
        ("panels = 'yes'", r"panels = 'yes' in liveheat\.toml: expected true/false"),
        ("input_size = 150", r"expected a multiple of 32"),
        ("input_size = 8192", r"expected a multiple of 32 in \[32, 4096\]"),  # GBs of memory
        (
            "threads = 100000",
            r"threads = 100000 in liveheat\.toml: expected an integer in \[1, 256\]",
        ),
        ("max_clients = 100000000", r"expected an integer in \[1, 1000\]"),
        ("colormap = 'jt'", r"colormap = 'jt' in liveheat\.toml: expected one of .*did you mean"),
        ("method = 'gradcam'", r"expected one of cam, eigen, mean, max, norm or channel:K"),
        ("serve = 'host:99999'", r"serve = 'host:99999' in liveheat\.toml: expected \[HOST:\]PORT"),
        ("[run]\nalpha = 0.3", r"\[run\] in liveheat\.toml is a table"),
        ("alpha = ", r"liveheat\.toml is not valid TOML"),
        ("alpha = 0.2\nalpha-x = 1", r"unknown key 'alpha-x'"),
        ("max_fps = 5\nmax-fps = 6", r"sets max_fps twice"),
    ],
)
def test_config_errors_name_the_key_the_file_and_what_was_expected(tmp_path, text, message):
    with pytest.raises(LiveheatError, match=message):
        load_config(_write(tmp_path, text))


def test_config_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(LiveheatError, match=r"config file '.*nope\.toml' not found"):
        load_config(tmp_path / "nope.toml")


def test_precedence_defaults_preset_config_flags(tmp_path):
    assert build_settings().every == 1  # defaults
    assert build_settings(preset="edge").every == 2  # < preset
    cfg = _write(tmp_path, 'preset = "edge"\nevery = 3\nalpha = 0.7\n')
    s = build_settings(config=cfg)  # < config (its own preset sits below its keys)
    assert (s.every, s.model, s.alpha, s.preset) == (3, "int8", 0.7, "edge")
    s = build_settings({"every": 4, "alpha": None}, config=cfg)  # < explicit flags
    assert (s.every, s.alpha, s.input_size) == (4, 0.7, 160)
    s = build_settings({"model": "x.onnx"}, config=cfg)
    assert s.model == "x.onnx"
    assert build_settings({"every": 1}, preset="edge").every == 1  # a flag equal to the default
    with pytest.raises(LiveheatError, match=r"every = 0: expected an integer in \[1, 1000\]"):
        build_settings({"every": 0})


def test_every_and_channel_bounds():
    assert check_value("every", 1000) == 1000
    with pytest.raises(LiveheatError, match=r"every = 1001: expected an integer in \[1, 1000\]"):
        check_value("every", 1001)
    assert check_value("method", "channel:0") == "channel:0"
    for bad in ("channel:3\n", "channel:\u0663", "channel:\uff13", "channel:+3", " channel:3"):
        with pytest.raises(LiveheatError, match="or channel:K"):
            check_value("method", bad)


def test_config_uses_the_settings_names_for_inverted_flags(tmp_path):
    cfg = load_config(_write(tmp_path, "show = false\nhud = false\n"))
    assert cfg == {"show": False, "hud": False}
    s = build_settings(config=_write(tmp_path, "show = false\nhud = false\n"))
    assert (s.show, s.hud) == (False, False)


def test_parse_serve_binds_loopback_unless_a_host_is_given():
    assert parse_serve("8080") == ("127.0.0.1", 8080)
    assert parse_serve(":8080") == ("127.0.0.1", 8080)
    assert parse_serve("0.0.0.0:8080") == ("0.0.0.0", 8080)
    assert parse_serve("[::]:9000") == ("::", 9000)
    for bad in ("http", "80800", "host:", "-1"):
        with pytest.raises(LiveheatError, match="expected \\[HOST:\\]PORT"):
            parse_serve(bad)


def test_settings_keys_are_what_a_config_may_use():
    assert "max_fps" in Settings.keys() and "_lock" not in Settings.keys()


# ---------------------------------------------------------------------- on the command line
CLIP = Path(__file__).parents[1] / "liveheat" / "data" / "bigbuckbunny.mp4"


def test_cli_unknown_config_key_is_one_line_and_exit_2(tmp_path, capsys):
    cfg = _write(tmp_path, "alpha = 0.4\nxyz = 1\n")
    assert main(["run", str(CLIP), "--config", str(cfg), "--no-show", "-o", "x.avi"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("liveheat: error: unknown key 'xyz' in liveheat.toml; valid: model, ")
    assert err.count("\n") == 1 and "Traceback" not in err


@pytest.mark.parametrize(
    "config, flags, inferred",
    [
        (None, ["--preset", "edge"], 6),  # preset: every 2nd frame
        (None, ["--preset", "edge", "--every", "1"], 12),  # a flag beats the preset
        ('preset = "edge"\nevery = 3\n', [], 4),  # the config beats its own preset
        ('preset = "edge"\nevery = 3\n', ["--every", "4"], 3),  # a flag beats the config
    ],
)
def test_cli_precedence_preset_config_flags(tmp_path, capsys, config, flags, inferred):
    out = tmp_path / "out.avi"
    argv = ["run", str(CLIP), "--no-show", "-o", str(out), "--max-frames", "12", *flags]
    if config:
        argv += ["--config", str(_write(tmp_path, config))]
    assert main(argv) == 0
    summary = capsys.readouterr().out
    assert "12 frames in, 12 out" in summary and f", {inferred} inferred" in summary, summary
    cap = cv2.VideoCapture(str(out))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 12
    cap.release()


def test_a_broken_opencv_still_lets_doctor_say_so(tmp_path):
    # the classic edge failure: opencv-python installed on a server without libGL.so.1
    import os
    import subprocess
    import sys

    fake = tmp_path / "cv2"
    fake.mkdir()
    (fake / "__init__.py").write_text(
        'raise ImportError("libGL.so.1: cannot open shared object file: No such file")\n'
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), os.getcwd()])}

    def cmd(*args):
        return subprocess.run(
            [sys.executable, "-m", "liveheat", *args], env=env, capture_output=True, text=True,
            timeout=120,
        )  # fmt: skip

    doc = cmd("doctor", "--no-cameras")
    assert doc.returncode == 0, doc.stderr
    sections = _sections(doc.stdout)
    assert "libGL.so.1" in sections["opencv"]["import"]
    assert sections["onnxruntime"]["version"] == ort.__version__  # the rest is still reported
    img = cmd("image", str(tmp_path / "in.png"), "-o", str(tmp_path / "out.png"))
    assert img.returncode == 2 and "Traceback" not in img.stderr
    assert img.stderr.count("\n") == 1 and img.stderr.startswith("liveheat: error:")
    assert "libGL.so.1" in img.stderr and "liveheat doctor" in img.stderr
    lib = subprocess.run(
        [sys.executable, "-c", "import liveheat\nliveheat.overlay"], env=env,
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert lib.returncode == 1 and "ImportError: liveheat.overlay needs OpenCV" in lib.stderr
