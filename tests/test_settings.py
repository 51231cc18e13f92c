"""One rule per setting: a bad value reads the same from a flag, a config file, the stream page,
a key and the API; the spec table is the one source of defaults, flags and live fields.

Real parts only: the command line (`liveheat.cli.main`), real TOML files, a real StreamServer
over HTTP with a token, `Controls` for keys, `Settings` and `liveheat.overlay` for the API.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

import liveheat
from liveheat.cli import build_parser, main
from liveheat.errors import LiveheatError
from liveheat.outputs.keys import Controls
from liveheat.outputs.stream.server import StreamServer
from liveheat.settings.config import load_config
from liveheat.settings.fields import (
    DRAWING_FIELDS,
    LIVE_FIELDS,
    METHODS,
    SPECS,
    SettingError,
    Settings,
    validate,
)

CLIP = Path(liveheat.__file__).parent / "data" / "bigbuckbunny.mp4"
TOKEN = "s3cret-token"
# where a value came from, as each path says it (the rest of the message is the same)
WHERES = r"(| from --[a-z-]+| in liveheat\.toml| in POST /settings| in Controls\([a-z]+=\.\.\.\))"


# ------------------------------------------------------------------------- the five paths
def _from_flag(capsys, tmp_path, key: str, text: str) -> str:
    out = tmp_path / "never.avi"
    flag = SPECS[key].flag_name
    code = main(["run", str(CLIP), "--no-show", "-o", str(out), flag, text])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err, err
    assert not out.exists()
    return err.strip().removeprefix("liveheat: error: ")


def _from_config(capsys, tmp_path, toml: str) -> str:
    cfg = tmp_path / "liveheat.toml"
    cfg.write_text(toml + "\n", encoding="utf-8")
    out = tmp_path / "never.avi"
    code = main(["run", str(CLIP), "--no-show", "-o", str(out), "--config", str(cfg)])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err, err
    assert not out.exists()
    return err.strip().removeprefix("liveheat: error: ")


def _post(url: str, obj) -> tuple[int, dict]:
    req = urllib.request.Request(
        url,
        data=json.dumps(obj).encode(),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}"},
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def _from_stream(key: str, value) -> str:
    settings = Settings()
    with StreamServer(port=0, token=TOKEN, settings=settings) as srv:
        status, body = _post(srv.url + "settings", {key: value})
    assert status == 400, body
    assert settings == Settings()  # nothing changed
    return body["error"]


def _from_api(key: str, value) -> list[str]:
    messages = []
    with pytest.raises(SettingError) as e:
        Settings(**{key: value})
    messages.append(str(e.value))
    s = Settings()
    with pytest.raises(LiveheatError) as e:
        s.update(**{key: value})
    assert s == Settings()  # a refused update changes nothing
    messages.append(str(e.value))
    if key in ("alpha", "mode", "colormap", "norm", "threshold"):  # the drawing's own arguments
        frame, heat = np.zeros((8, 8, 3), np.uint8), np.eye(8)
        with pytest.raises(ValueError) as e:  # a ValueError, as before, and a LiveheatError
            liveheat.overlay(frame, heat, **{key: value})
        assert isinstance(e.value, LiveheatError)
        messages.append(str(e.value))
    return messages


def _from_key(key: str, value) -> list[str]:
    """Keys set only methods and colormaps from a cycle; a bad cycle entry is refused up front
    with the same words (alpha is clamped to [0, 1] by the key itself)."""
    cycle = {"method": "methods", "colormap": "colormaps"}.get(key)
    if cycle is None:
        s = Settings(alpha=1.0)
        Controls(s).handle(ord("+"))
        assert s.alpha == 1.0  # no key leaves the range
        return []
    with pytest.raises(SettingError) as e:
        Controls(Settings(), **{cycle: (value,)})
    return [str(e.value)]


@pytest.mark.parametrize(
    "key, value, text, toml, core",
    [
        ("alpha", 2, "2", "alpha = 2", "a number in [0, 1]"),
        ("mode", "nope", "nope", 'mode = "nope"', "one of color, gray, mask, transparent"),
        ("colormap", "jt", "jt", 'colormap = "jt"', "one of autumn, .*; did you mean 'jet'\\?"),
        ("every", 0, "0", "every = 0", "an integer in [1, 1000]"),
        (
            "method",
            "nope",
            "nope",
            'method = "nope"',
            "one of cam, eigen, mean, max, norm or channel:K",
        ),
        ("smooth", 1, "1", "smooth = 1", "a number in [0, 1) (0 = off)"),
    ],
)
def test_a_bad_value_reads_the_same_on_every_path(capsys, tmp_path, key, value, text, toml, core):
    messages = {
        "flag": [_from_flag(capsys, tmp_path, key, text)],
        "config": [_from_config(capsys, tmp_path, toml)],
        "stream": [_from_stream(key, value)],
        "key": _from_key(key, value),
        "api": _from_api(key, value),
    }
    flat = [(path, m) for path, ms in messages.items() for m in ms]
    assert len(flat) >= 5
    head = re.escape(f"{key} = {value!r}")
    expected = core if "\\?" in core or ".*" in core else re.escape(core)
    tails = set()
    for path, m in flat:
        assert re.fullmatch(f"{head}{WHERES}: expected {expected}", m), (path, m)
        tails.add(m.split(": expected ", 1)[1])
    assert len(tails) == 1, tails  # word for word the same after the source's name


def test_the_stream_page_may_change_exactly_the_live_fields():
    settings = Settings()
    with StreamServer(port=0, token=TOKEN, settings=settings) as srv:
        status, body = _post(srv.url + "settings", {"every": 3, "paused": True, "target": 5})
        assert status == 200 and (settings.every, settings.paused, settings.target) == (3, True, 5)
        assert set(body["settings"]) == set(LIVE_FIELDS)
        status, body = _post(srv.url + "settings", {"model": "int8"})
    assert status == 400 and "cannot be changed here" in body["error"]


def test_a_flag_names_itself_and_a_word_that_is_no_number_is_refused_alike(capsys, tmp_path):
    assert _from_flag(capsys, tmp_path, "alpha", "lots") == (
        "alpha = 'lots' from --alpha: expected a number"
    )
    assert _from_config(capsys, tmp_path, 'alpha = "lots"') == (
        "alpha = 'lots' in liveheat.toml: expected a number"
    )
    assert _from_flag(capsys, tmp_path, "every", "1.5") == (
        "every = 1.5 from --every: expected an integer"
    )
    assert _from_flag(capsys, tmp_path, "max_fps", "nan") == (
        "max_fps = nan from --max-fps: expected a finite number"
    )


def test_preflight_checks_a_value_assigned_around_the_rules():
    from liveheat.pipeline.preflight import preflight

    s = Settings()
    s.alpha = 2  # a plain attribute write skips update(); preflight still says the same words
    with pytest.raises(SettingError, match=r"^alpha = 2: expected a number in \[0, 1\]$"):
        preflight(s)


# ------------------------------------------------------------------------- the spec table
def test_every_setting_has_one_spec_and_its_default_is_the_dataclass_default():
    fields = [f for f in dataclasses.fields(Settings) if not f.name.startswith("_")]
    assert [f.name for f in fields] == list(SPECS) == Settings.keys()
    plain = Settings()
    for f in fields:
        spec = SPECS[f.name]
        assert spec.name == f.name and spec.help
        assert spec.default == f.default == getattr(plain, f.name)
        assert validate(f.name, spec.default) == spec.default  # every default obeys its rule
        if f.name != "paused":  # the one setting without a flag (a key and the page set it)
            assert spec.flag_name is not None


def test_the_live_fields_have_one_name_and_the_old_names_follow_it():
    from liveheat.outputs.stream import server

    assert set(DRAWING_FIELDS) < set(LIVE_FIELDS)
    assert set(LIVE_FIELDS) - set(DRAWING_FIELDS) == {"every", "paused"}
    assert not hasattr(server, "LIVE_KEYS")
    for name in LIVE_FIELDS:
        assert SPECS[name].live


def test_the_methods_are_listed_once():
    from liveheat.model.heatmaps import METHODS as model_methods

    assert tuple(model_methods) == METHODS
    assert METHODS[-1] == "channel:K"


def test_every_setting_flag_of_run_comes_from_the_specs_with_its_default_in_help():
    parser = build_parser()
    run = parser._subparsers._group_actions[0].choices["run"]
    by_dest = {a.dest: a for a in run._actions}
    for name, spec in SPECS.items():
        if spec.flag_name is None:
            continue
        action = by_dest[name]
        assert spec.flag_name in action.option_strings
        assert action.default is None  # not given: presets and config files layer under it
    assert by_dest["output"].option_strings == ["-o", "--output"]
    assert by_dest["mode"].choices == ("color", "gray", "mask", "transparent")
    text = run.format_help()
    assert "(default: 0.5)" in text and "a number in [0, 1]" in text and "--no-show" in text
    args = parser.parse_args(["run", "x.mp4", "--no-show", "--no-hud", "--panels"])
    assert (args.show, args.hud, args.panels, args.alpha) == (False, False, True, None)


def test_image_flags_hold_the_settings_defaults():
    args = build_parser().parse_args(["image", "in.png", "-o", "out.png"])
    assert (args.alpha, args.colormap, args.mode, args.method) == (0.5, "jet", "color", "cam")


# ------------------------------------------------------------------------- spellings
@pytest.mark.parametrize("spelling", ["jet", "JET", "COLORMAP_JET", "colormap_jet", "Jet"])
def test_a_colormap_may_be_written_as_opencv_names_it(spelling, tmp_path):
    assert validate("colormap", spelling) == "jet"
    assert Settings(colormap=spelling).colormap == "jet"
    args = build_parser().parse_args(["run", "x.mp4", "--colormap", spelling])
    assert args.colormap == "jet"
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'colormap = "{spelling}"\n', encoding="utf-8")
    assert load_config(cfg) == {"colormap": "jet"}
    frame, heat = np.zeros((16, 16, 3), np.uint8), np.random.default_rng(1).random((4, 4))
    assert np.array_equal(
        liveheat.overlay(frame, heat, colormap=spelling), liveheat.overlay(frame, heat)
    )


def test_did_you_mean_is_one_helper_with_one_shape():
    from liveheat._common.text import did_you_mean

    assert did_you_mean("jt", ["jet", "hot"]) == "did you mean 'jet'?"
    assert did_you_mean("TRANSPARNT", ["transparent"], before="; ") == (
        "; did you mean 'transparent'?"
    )
    assert did_you_mean("cma", ["cam", "eigen"]) == "did you mean 'cam'?"  # swapped letters
    assert did_you_mean("zzz", ["jet"], before="; ") == ""
    assert did_you_mean("x" * 10**6, ["jet"]) == ""  # a huge word is cut, not matched for long


# ------------------------------------------------------------------------- hostile config files
def _config_error(capsys, tmp_path, cfg: Path) -> str:
    out = str(tmp_path / "o.avi")
    code = main(["run", str(CLIP), "--no-show", "-o", out, "--config", str(cfg)])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err, err
    return err


@pytest.mark.parametrize(
    "text",
    ["alpha = " + "[" * 5000 + "]" * 5000, "a = " + "{b = " * 3000 + "1" + "}" * 3000],
    ids=["arrays", "inline-tables"],
)
def test_a_deeply_nested_config_is_one_line_exit_2(capsys, tmp_path, text):
    cfg = tmp_path / "liveheat.toml"
    cfg.write_text(text + "\n", encoding="utf-8")
    assert "nests too deeply" in _config_error(capsys, tmp_path, cfg)


def test_a_config_over_one_mebibyte_is_refused(capsys, tmp_path):
    cfg = tmp_path / "liveheat.toml"
    cfg.write_text("# " + "x" * (1 << 20) + "\nalpha = 0.5\n", encoding="utf-8")
    assert "over 1 MiB" in _config_error(capsys, tmp_path, cfg)


@pytest.mark.parametrize("kind", ["fifo", "/dev/zero", "folder"])
def test_a_config_that_is_no_regular_file_is_refused_at_once(tmp_path, kind):
    if kind == "fifo":
        path = tmp_path / "liveheat.toml"
        os.mkfifo(path)  # nobody writes to it: reading it would wait forever
    elif kind == "folder":
        path = tmp_path
    else:
        path = Path(kind)
    # a separate process with a deadline: a regression would hang, not fail
    r = subprocess.run(
        [sys.executable, "-m", "liveheat", "run", str(CLIP), "--no-show", "-o",
         str(tmp_path / "o.avi"), "--config", str(path)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1, r.stderr
    assert lines[0].startswith("liveheat: error: config file ") and "Traceback" not in r.stderr
    assert ("is a folder" if kind == "folder" else "not a regular file") in lines[0]
