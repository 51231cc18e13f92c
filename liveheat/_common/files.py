"""Files: one writable-path check, one temporary-file-then-rename, the bundled data.

Every output file is written beside its target under a hidden temporary name and renamed onto
it only when complete, so a failed or interrupted write never leaves a half file at the target
and an older file there stays as it was until the new one is whole.
"""

from __future__ import annotations

import contextlib
import glob
import os
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

from liveheat.errors import LiveheatError


def bundled_clip() -> str:
    """The path of the bundled Big Buck Bunny clip (1280x720, 25 fps, 132 frames).

    The clip ships inside the package (in a wheel too), found with `importlib.resources`.

    Args:
        None.

    Returns:
        The clip's path as a `str`, ready for `open_source` or `annotate_video`.

    Raises:
        Nothing: the path is built, not checked (a damaged install fails where it is opened).

    Examples:
        >>> Path(bundled_clip()).name
        'bigbuckbunny.mp4'
        >>> Path(bundled_clip()).is_file()
        True
    """
    return str(resources.files("liveheat") / "data" / "bigbuckbunny.mp4")


def check_writable(path: str | os.PathLike, what: str, *, suffixes: tuple[str, ...] = ()) -> Path:
    """Check up front that a file can be written at `path`; the path, or LiveheatError.

    Args:
        path: the file to write.
        what: what it is, for the message ("video", "maps", "image").
        suffixes: the extensions allowed (lower case, with the dot); () allows any.

    Returns:
        `path` as a `Path`.

    Raises:
        LiveheatError: `path` is a folder, has another extension, its folder does not exist,
            or it is not writable.

    Examples:
        >>> check_writable("maps.npz", "maps", suffixes=(".npz",)).name
        'maps.npz'
        >>> check_writable("maps.txt", "maps", suffixes=(".npz",))  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        liveheat.errors.LiveheatError: cannot write maps 'maps.txt': expected an .npz file name ...
    """
    p = Path(path)
    shown = os.fspath(path)
    if p.is_dir():
        example = p / f"out{suffixes[0] if suffixes else ''}"
        raise LiveheatError(
            f"cannot write {what} {shown!r}: it is a folder; give a file name such as "
            f"{str(example)!r}"
        )
    if suffixes and p.suffix.lower() not in suffixes:
        raise LiveheatError(
            f"cannot write {what} {shown!r}: expected an {' or '.join(suffixes)} file name "
            f"(e.g. out{suffixes[0]})"
        )
    folder = p.parent if str(p.parent) else Path(".")
    if not folder.is_dir():
        raise LiveheatError(
            f"cannot write {what} {shown!r}: folder {str(folder)!r} does not exist; create it or "
            "choose another path"
        )
    if not os.access(folder, os.W_OK | os.X_OK) or (p.exists() and not os.access(p, os.W_OK)):
        raise LiveheatError(
            f"cannot write {what} {shown!r}: permission denied; choose a writable path"
        )
    return p


def temp_path(path: str | os.PathLike) -> Path:
    """The hidden temporary name a file is written under beside `path` (`.NAME.<pid>.tmp.EXT`).

    Examples:
        >>> temp_path("out/clip.mp4").name.endswith(".tmp.mp4")
        True
    """
    p = Path(path)
    base = p.name[: len(p.name) - len(p.suffix)]
    return p.with_name(f".{base}.{os.getpid()}.tmp{p.suffix}")


def temporaries_of(path: str | os.PathLike) -> list[Path]:
    """The temporary files `temp_path` names for `path`, of any process, that exist now.

    Examples:
        >>> temporaries_of("/nonexistent/clip.mp4")
        []
    """
    p = Path(path)
    stem = p.name[: len(p.name) - len(p.suffix)]
    pattern = f".{glob.escape(stem)}.*.tmp{glob.escape(p.suffix)}"
    return sorted(Path(f) for f in glob.glob(os.path.join(glob.escape(str(p.parent)), pattern)))


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, what: str = "file") -> Iterator[Path]:
    """Write through a temporary file beside `path`, renamed onto it when the block succeeds.

    The block writes the temporary path it is given. On an exception nothing is left behind and
    an older file at `path` is untouched; an OSError becomes a one-line LiveheatError.

    Examples:
        >>> import tempfile
        >>> target = Path(tempfile.mkdtemp()) / "a.txt"
        >>> with atomic_write(target) as tmp:
        ...     _ = tmp.write_text("done")
        >>> target.read_text()
        'done'
    """
    target = Path(path)
    tmp = temp_path(target)
    try:
        yield tmp
        os.replace(tmp, target)
    except OSError as e:
        label = f"{what} " if what else ""
        raise LiveheatError(f"cannot write {label}{os.fspath(path)!r}: {e.strerror or e}") from None
    finally:
        with contextlib.suppress(OSError):
            if tmp.exists():
                tmp.unlink()


def same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """True when the two paths name one file (by inode when both exist).

    Examples:
        >>> same_file("a/../x.png", "x.png")
        True
    """
    try:
        if os.path.exists(a) and os.path.exists(b):
            return os.path.samefile(a, b)
    except (OSError, TypeError, ValueError):
        return False
    return os.path.abspath(a) == os.path.abspath(b)
