"""`liveheat doctor`: what this machine can read, write, run and show, as pasteable plain text.

It only looks: video files in a temporary folder, cameras with a timeout, a window only in a child.
"""

from __future__ import annotations

import hashlib
import importlib
import os
import platform
import sys
import tempfile
import threading
import time
from pathlib import Path

from liveheat._common.system import gui_backend, quiet_opencv, quiet_stderr, usable_cores

CAMERA_INDICES = (0, 1, 2, 3)
# sha256 of the bundled models as exported (models/README.md lists the same digests)
EXPECTED_SHA256 = {
    "efficientnet_lite0.onnx": "720149bc84403488c5315e22b1e643713ba488c38b63b6fca1e92cfa5e0b1b48",
    "efficientnet_lite0_int8.onnx": (
        "79babc28b01730a11e2b7a12ab61ae0362db1afa359a5784978937e608f82073"
    ),
}

Section = tuple[str, list[tuple[str, str]]]


def probe_video_files(folder: str | os.PathLike | None = None) -> list[tuple[str, str, bool]]:
    """Write (and read back with PyAV) a tiny clip for every output extension, with what the
    codec table (`outputs/codecs.py`) says it uses.

    Returns (extension, what it uses, works) per extension. Files go to a temporary folder
    that is removed.

    Examples:
        >>> (".avi", True) in [(e, ok) for e, _, ok in probe_video_files()]
        True
    """
    import av
    import numpy as np

    from liveheat.errors import LiveheatError
    from liveheat.outputs.codecs import extension_table
    from liveheat.outputs.video import VideoSink

    frames = [np.full((64, 96, 3), 40 * i, np.uint8) for i in range(5)]
    results = []
    with tempfile.TemporaryDirectory(prefix="liveheat-doctor-", dir=folder) as tmp:
        for ext, uses in extension_table():
            path = os.path.join(tmp, f"probe{ext}")
            works = False
            try:
                with quiet_stderr(), VideoSink(path, fps=25.0, notice=lambda _: None) as sink:
                    for f in frames:
                        sink.write(f)
                with av.open(path) as f:
                    works = sum(1 for _ in f.decode(video=0)) == len(frames)
            except (LiveheatError, av.FFmpegError, OSError):
                works = False
            results.append((ext, uses, works))
    return results


def video_rows() -> list[tuple[str, str]]:
    """PyAV's and FFmpeg's versions, the encoders present, and what each extension uses."""
    av, av_error = _import("av")
    if av is None:
        return [("import", av_error)]
    lib = av.library_versions.get("libavcodec")
    rows = [
        ("pyav", av.__version__),
        ("ffmpeg", f"{av.ffmpeg_version_info} (libavcodec {'.'.join(map(str, lib or ()))})"),
    ]
    cv2, _ = _import("cv2")
    if cv2 is None:  # liveheat's outputs draw and convert with OpenCV
        rows.append(("write + read back", "skipped: OpenCV did not import (see above)"))
        return rows
    from liveheat.outputs.codecs import DOCTOR_ENCODERS, encoder_present

    for family, names in DOCTOR_ENCODERS:
        present = [n for n in names if encoder_present(n)]
        rows.append((f"encoder {family}", ", ".join(present) if present else "none"))
    for ext, uses, works in probe_video_files():
        rows.append((ext, f"{uses}; writes + reads back: {'yes' if works else 'no'}"))
    return rows


def probe_cameras(
    indices=CAMERA_INDICES, *, timeout: float = 3.0
) -> tuple[list[tuple[int, str]], str]:
    """Open each camera index in parallel with a total `timeout`; ([(index, "WxH")], note).

    On Linux without /dev/video* devices nothing is opened. A camera that hangs on open is
    reported as not answering; its probe thread is left as a daemon.

    Examples:
        >>> found, note = probe_cameras(timeout=2.0)
        >>> isinstance(found, list) and isinstance(note, str)
        True
    """
    if sys.platform.startswith("linux"):
        devices = sorted(str(p) for p in Path("/dev").glob("video*"))
        if not devices:
            return [], "no /dev/video* devices"
        note = "devices: " + " ".join(devices)
    else:
        note = ""
    import cv2

    found: dict[int, str] = {}

    def probe(i: int) -> None:
        cap = cv2.VideoCapture(i)
        try:
            if cap.isOpened():
                ok, image = cap.read()
                found[i] = f"{image.shape[1]}x{image.shape[0]}" if ok else "opens, no frame"
        finally:
            cap.release()

    with quiet_opencv():
        threads = [threading.Thread(target=probe, args=(i,), daemon=True) for i in indices]
        with quiet_stderr():
            for t in threads:
                t.start()
            deadline = time.monotonic() + timeout
            for t in threads:
                t.join(max(0.0, deadline - time.monotonic()))
        hung = [i for i, t in zip(indices, threads, strict=True) if t.is_alive()]
    if hung:
        note = (note + "; " if note else "") + f"no answer within {timeout:g} s: {hung}"
    return sorted(found.items()), note


def display_status() -> tuple[bool, str]:
    """(ok, reason) from `outputs.display_available` (a test window opens in a child process only).

    Examples:
        >>> ok, reason = display_status()
        >>> isinstance(ok, bool) and bool(reason)
        True
    """
    try:
        from liveheat.outputs.display import display_available
    except Exception as e:  # outputs (or OpenCV under it) broken: say so rather than guess
        return False, f"cannot check: {type(e).__name__}: {e}"
    ok, reason = display_available()
    return bool(ok), str(reason or ("available" if ok else "unavailable"))


def sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks.

    Examples:
        >>> import liveheat, pathlib
        >>> len(sha256(pathlib.Path(liveheat.__file__)))
        64
    """
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


MISSING = "MISSING"
MISMATCH = "MISMATCH"


def _models() -> list[tuple[str, str]]:
    """The bundled models section: the folder, then one row per model with size and sha256.

    A bundled model reads `MISSING` when absent and carries `MISMATCH (expected ...)` when its
    digest is not the exported one; an extra `.onnx` in the folder is listed without a verdict.
    """
    try:
        from liveheat.model.bundled import BUNDLED, models_dir
    except Exception as e:  # backbone needs onnxruntime and OpenCV
        return [("models", f"cannot check: {type(e).__name__}: {e}")]
    folder = models_dir()
    rows = [("folder", str(folder))]
    names = list(BUNDLED.values())
    if folder.is_dir():
        names += sorted(p.name for p in folder.glob("*.onnx") if p.name not in names)
    for name in names:
        path = folder / name
        variant = next((k for k, v in BUNDLED.items() if v == name), "extra")
        if path.is_file():
            size, digest = path.stat().st_size, sha256(path)
            expected = EXPECTED_SHA256.get(name)
            if expected is None:
                verdict = ""
            elif digest == expected:
                verdict = "  ok"
            else:
                verdict = f"  {MISMATCH} (expected {expected}; re-export or reinstall it)"
            rows.append((f"{name} ({variant})", f"{size / 1e6:.1f} MB  sha256 {digest}{verdict}"))
        else:
            rows.append((f"{name} ({variant})", MISSING))
    return rows


def model_problems(sections: list[Section]) -> list[str]:
    """The bundled models that cannot be used, as read from the report's `bundled models` rows.

    Returns one `"NAME (VARIANT) missing"` / `"... checksum mismatch"` per bad bundled model;
    [] when all is well. Extra models in the folder are not judged, and neither is a check that
    could not run (OpenCV or onnxruntime broken: their own sections say so).

    Examples:
        >>> model_problems([("bundled models", [("folder", "/m"), ("a.onnx (fp32)", "MISSING"),
        ...     ("b.onnx (int8)", "5.1 MB  sha256 00  MISMATCH (expected 11; ...)"),
        ...     ("mine.onnx (extra)", "0.0 MB  sha256 22")])])
        ['a.onnx (fp32) missing', 'b.onnx (int8) checksum mismatch']
    """
    rows = dict(sections).get("bundled models", [])
    problems = []
    for key, value in rows:
        if key in ("folder", "models") or key.endswith(" (extra)"):
            continue
        if value == MISSING:
            problems.append(f"{key} missing")
        elif f"  {MISMATCH} " in value:
            problems.append(f"{key} checksum mismatch")
    return problems


def _import(name: str):
    """(module, "") or (None, why): a broken install is a report line, not a traceback."""
    try:
        return importlib.import_module(name), ""
    except Exception as e:  # ImportError, or whatever a half-installed native library raises
        return None, f"import failed: {type(e).__name__}: {str(e).strip() or '?'}"


def _auto_row() -> str:
    """What `--device auto` runs on here, and with which providers."""
    try:  # liveheat.model loads OpenCV too: a broken OpenCV must not hide this report
        from liveheat.model.devices import auto_device, providers_for
    except ImportError as e:
        return f"unknown ({' '.join(str(e).split())})"
    device = auto_device()
    return f"{device} ({', '.join(providers_for(device, say=False))})"


def _blas_row() -> str:
    """OpenBLAS thread counts as the loaded libraries report them, and who chose them."""
    from liveheat._common import blas

    counts = ", ".join(f"{n} in {name}" for name, n in blas.threads()) or "no OpenBLAS loaded"
    return f"{counts} ({blas.who_chose()})"


def collect(*, cameras: bool = True) -> list[Section]:
    """Everything the report shows, as (section title, [(name, value)]) pairs.

    A library that fails to import gets an `import failed: ...` line in its section, and the
    checks that need it say they were skipped.

    Examples:
        >>> dict(collect(cameras=False))["opencv"][0][0]
        'version'
    """
    cv2, cv2_error = _import("cv2")
    np, np_error = _import("numpy")
    ort, ort_error = _import("onnxruntime")

    import liveheat

    sections: list[Section] = []
    sections.append(
        (
            "system",
            [
                ("liveheat", f"{liveheat.__version__} at {Path(liveheat.__file__).parent}"),
                ("python", f"{platform.python_version()} ({platform.python_implementation()})"),
                ("platform", platform.platform()),
                ("machine", platform.machine() or "?"),
                ("cpu cores", f"{usable_cores()} usable of {os.cpu_count()}"),
                ("numpy", np.__version__ if np is not None else np_error),
                ("blas threads", _blas_row()),
            ],
        )
    )
    skipped = [("skipped", "OpenCV or numpy did not import (see above)")]
    if cv2 is None:
        sections.append(("opencv", [("import", cv2_error)]))
    else:
        sections.append(("opencv", _opencv_rows(cv2)))
    sections.append(("video files (PyAV)", video_rows()))
    if ort is None:
        sections.append(("onnxruntime", [("import", ort_error)]))
    else:
        sections.append(
            (
                "onnxruntime",
                [
                    ("version", ort.__version__),
                    ("device", ort.get_device()),
                    ("providers", ", ".join(ort.get_available_providers())),
                    ("--device auto", _auto_row()),
                ],
            )
        )
    if cameras and cv2 is None:
        sections.append(("cameras (indices 0-3)", skipped))
    elif cameras:
        found, note = probe_cameras()
        rows = [(f"camera {i}", desc) for i, desc in found] or [("cameras", "none found")]
        if note:
            rows.append(("note", note))
        sections.append(("cameras (indices 0-3)", rows))
    ok, reason = display_status()
    sections.append(("display", [("window", f"{'yes' if ok else 'no'}: {reason}")]))
    sections.append(("bundled models", _models()))
    env = [
        (k, ("set" if k == "LIVEHEAT_TOKEN" else os.environ[k]) if k in os.environ else "-")
        for k in ("DISPLAY", "WAYLAND_DISPLAY", "LIVEHEAT_MODELS", "LIVEHEAT_TOKEN")
    ]
    sections.append(("environment", env))
    return sections


def _opencv_rows(cv2) -> list[tuple[str, str]]:
    try:
        names = [cv2.videoio_registry.getBackendName(b) for b in cv2.videoio_registry.getBackends()]
        backends = ", ".join(dict.fromkeys(names))
    except (AttributeError, cv2.error):
        backends = "?"
    return [
        ("version", cv2.__version__),
        ("gui backend", gui_backend()),
        ("video backends", backends),
        ("threads", str(cv2.getNumThreads())),
    ]


def format_report(sections: list[Section]) -> str:
    """Plain text: one `[title]` block per section, names padded to one column.

    Examples:
        >>> print(format_report([("x", [("a", "1")])]))
        liveheat doctor (paste this into a bug report)
        <BLANKLINE>
        [x]
          a  1
    """
    lines = ["liveheat doctor (paste this into a bug report)"]
    for title, rows in sections:
        width = max((len(k) for k, _ in rows), default=0)
        lines += ["", f"[{title}]"]
        lines += [f"  {k.ljust(width)}  {v}" for k, v in rows]
    return "\n".join(lines)


def run_doctor(stream=None, *, cameras: bool = True) -> int:
    """Print the report to `stream` (stdout); exit status 1 when a bundled model is unusable.

    The whole report is printed first; then, when a bundled model is missing or its checksum is
    wrong, one `liveheat: error: ...` line on stderr and status 1. Otherwise status 0: a missing
    camera, display or codec is a fact about the machine, not a broken install.

    Examples:
        >>> import io
        >>> buf = io.StringIO()
        >>> run_doctor(buf, cameras=False)
        0
        >>> "[onnxruntime]" in buf.getvalue()
        True
    """
    sections = collect(cameras=cameras)
    print(format_report(sections), file=stream or sys.stdout)
    problems = model_problems(sections)
    if problems:
        from liveheat.model.bundled import EXPORT_SCRIPT

        print(
            f"liveheat: error: {'; '.join(problems)}: reinstall liveheat, re-export with "
            f"`python {EXPORT_SCRIPT}` in a checkout, or point LIVEHEAT_MODELS at good copies",
            file=sys.stderr,
        )
        return 1
    return 0
