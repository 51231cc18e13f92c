"""The house rules of docs/architecture.md, checked: the import flow, module and class sizes."""

from __future__ import annotations

import ast
import shutil
import subprocess
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parent.parent / "liveheat"
MAX_MODULE_LINES = 500
MAX_CLASS_LINES = 250
# the overlay kernel: normalise, colormap tables, chunked bilinear rows, banded blends; one
# job whose parts share private tables and scratch buffers (splitting it would export them)
BIG_MODULES = {"draw/overlay.py": 620}


def _modules() -> list[Path]:
    return sorted(p for p in PKG.rglob("*.py") if "__pycache__" not in p.parts)


@pytest.mark.skipif(shutil.which("lint-imports") is None, reason="pip install import-linter")
def test_the_import_contracts_hold():
    r = subprocess.run(["lint-imports"], cwd=PKG.parent, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout[-3000:]
    assert "0 broken" in r.stdout


def test_no_module_is_over_about_500_lines():
    too_big = {}
    for path in _modules():
        rel = path.relative_to(PKG).as_posix()
        n = len(path.read_text(encoding="utf-8").splitlines())
        if n > BIG_MODULES.get(rel, MAX_MODULE_LINES):
            too_big[rel] = n
    assert not too_big, too_big


def _code_lines(node: ast.ClassDef) -> int:
    """A class's lines without its docstring (the Args/Examples text is not code)."""
    n = node.end_lineno - node.lineno + 1
    first = node.body[0] if node.body else None
    if isinstance(first, ast.Expr) and isinstance(getattr(first, "value", None), ast.Constant):
        n -= first.end_lineno - first.lineno + 1
    return n


def test_no_class_is_over_about_250_lines():
    too_big = {}
    for path in _modules():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef) and _code_lines(node) > MAX_CLASS_LINES:
                too_big[f"{path.relative_to(PKG).as_posix()}:{node.name}"] = _code_lines(node)
    assert not too_big, too_big


def test_every_room_has_a_short_init_that_names_its_parts():
    rooms = ["_common", "settings", "sources", "model", "draw", "outputs", "pipeline"]
    for room in rooms:
        init = PKG / room / "__init__.py"
        text = init.read_text(encoding="utf-8")
        tree = ast.parse(text)
        assert ast.get_docstring(tree), f"{room}/__init__.py says what the room is for"
        assert len(text.splitlines()) <= 60, f"{room}/__init__.py is short"
