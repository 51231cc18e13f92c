"""Every docstring example in the liveheat package runs and gives what it shows.

One test per module: pkgutil walks the package, doctest finds the examples (ELLIPSIS and
NORMALIZE_WHITESPACE on) and runs them from the repository root, so an example that names a
file in the checkout reads the same file wherever pytest was started.
"""

from __future__ import annotations

import doctest
import importlib
import pkgutil
from pathlib import Path

import pytest

import liveheat

ROOT = Path(__file__).resolve().parent.parent
FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def _modules() -> list[str]:
    """Every module of the package; `__main__` modules are left out (importing one runs it)."""
    names = [liveheat.__name__]
    for info in pkgutil.walk_packages(liveheat.__path__, prefix=f"{liveheat.__name__}."):
        if info.name.rsplit(".", 1)[-1] != "__main__":
            names.append(info.name)
    return sorted(names)


MODULES = _modules()


def test_the_walk_finds_every_room():
    rooms = {name.split(".")[1] for name in MODULES if name.count(".") >= 1}
    assert {"_common", "settings", "sources", "model", "draw", "outputs", "pipeline"} <= rooms
    assert "liveheat.model.backbone" in MODULES and "liveheat.outputs.stream.server" in MODULES


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name, monkeypatch):
    module = importlib.import_module(name)
    # examples see the module's own namespace, as they would in a session that imported it
    tests = doctest.DocTestFinder(exclude_empty=True).find(module, name, globs=vars(module).copy())
    tests = [t for t in tests if t.examples]  # a module without examples passes: nothing to run
    monkeypatch.chdir(ROOT)
    runner = doctest.DocTestRunner(verbose=False, optionflags=FLAGS)  # not -v's every example
    for test in sorted(tests, key=lambda t: t.name):
        runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed in {name}"
