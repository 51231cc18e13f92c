"""`liveheat batch`: folders, globs and lists of videos and images, annotated into OUTDIR.

The flow: `collect` turns the inputs into `Job`s (the folder tree mirrored under OUTDIR, name
collisions resolved and said); the manifest (``OUTDIR/manifest.jsonl``) says which are done;
the rest run as tasks (one per video, one per chunk of images) on the local pool
(`batch_jobs.LocalPool`) or on Ray (`batch_ray`); each record is appended to the manifest as
its file ends, by this process only, so the manifest stays whole whatever stops the batch.
"""

from __future__ import annotations

import dataclasses
import glob
import json
import os
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from liveheat.errors import LiveheatError
from liveheat.pipeline.batch_jobs import IMAGE, VIDEO, Job, LocalPool
from liveheat.settings.fields import Settings
from liveheat.sources.base import IMAGE_EXTENSIONS

VIDEO_EXTENSIONS = (
    ".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".ts", ".m2ts", ".mts",
    ".wmv", ".flv", ".3gp", ".ogv",
)  # fmt: skip
MANIFEST = "manifest.jsonl"
IMAGES_PER_TASK = 16
_GLOB_CHARS = "*?["


@dataclass
class BatchReport:
    """What `annotate_batch` did.

    Attributes:
        records: one manifest record (a dict) per job of this run, in the order they ended.
        seconds: the batch's wall time.
        ray_start_s: the seconds Ray took to start or join (0 without Ray).
        manifest: the manifest's path.
    """

    records: list[dict] = field(default_factory=list)
    seconds: float = 0.0
    ray_start_s: float = 0.0
    manifest: str = ""

    def count(self, status: str) -> int:
        """How many jobs ended with `status` (``ok``, ``failed``, ``skipped``)."""
        return sum(1 for r in self.records if r["status"] == status)

    @property
    def ok(self) -> int:
        return self.count("ok")

    @property
    def failed(self) -> int:
        return self.count("failed")

    @property
    def skipped(self) -> int:
        return self.count("skipped")

    @property
    def frames(self) -> int:
        """Frames annotated in this run (skipped files not counted)."""
        return sum(r["frames"] for r in self.records if r["status"] != "skipped")

    def summary(self) -> str:
        """The closing table (files ok, failed, skipped; frames, time, frames per second)."""
        fps = self.frames / self.seconds if self.seconds > 0 else 0.0
        rows = [
            ("files ok", str(self.ok)),
            ("files failed", str(self.failed)),
            ("files skipped", str(self.skipped)),
            ("frames", str(self.frames)),
            ("time", f"{self.seconds:.1f} s" + (f" (Ray start {self.ray_start_s:.1f} s)"
                                                if self.ray_start_s else "")),
            ("frames/s", f"{fps:.1f}"),
        ]  # fmt: skip
        width = max(len(k) for k, _ in rows)
        lines = [f"  {k:<{width}}  {v}" for k, v in rows]
        for r in self.records:
            if r["status"] == "failed":
                lines.append(f"  failed: {r['input']}: {r['error']}")
        return "batch summary:\n" + "\n".join(lines) + f"\nmanifest: {self.manifest}"


# ------------------------------------------------------------------------------ inputs
def _kind(path: str) -> str | None:
    ext = os.path.splitext(path)[1].lower()
    return VIDEO if ext in VIDEO_EXTENSIONS else IMAGE if ext in IMAGE_EXTENSIONS else None


def _walk(folder: str) -> list[str]:
    found = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found += [os.path.join(root, f) for f in sorted(files) if not f.startswith(".")]
    return found


def _expand(spec: str) -> list[tuple[str, str]]:
    """(file, its root) pairs of one input: a file, a folder, a glob or @list.txt."""
    if spec.startswith("@"):
        listed = spec[1:]
        try:
            with open(listed, encoding="utf-8") as f:
                lines = [ln.strip() for ln in f]
        except (OSError, UnicodeDecodeError) as e:
            raise LiveheatError(f"cannot read the list {listed!r}: {e}") from None
        out = []
        for ln in lines:
            if ln and not ln.startswith("#"):
                out += _expand(ln)
        return out
    if any(c in spec for c in _GLOB_CHARS) and not os.path.exists(spec):
        matches = sorted(glob.glob(spec, recursive=True))
        if not matches:
            raise LiveheatError(f"no file matches {spec!r}")
        head = spec[: min(spec.index(c) for c in _GLOB_CHARS if c in spec)]
        root = os.path.dirname(head) or "."
        out = []
        for m in matches:
            out += [(f, root) for f in (_walk(m) if os.path.isdir(m) else [m])]
        return out
    if os.path.isdir(spec):
        return [(f, spec) for f in _walk(spec)]
    if os.path.isfile(spec):
        return [(spec, os.path.dirname(spec) or ".")]
    raise LiveheatError(f"no such file or folder: {spec!r}")


def _to_stderr(line: str) -> None:
    print(line, file=sys.stderr)


def _output_ext(path: str, kind: str) -> str:
    from liveheat.outputs.codecs import EXTENSIONS

    ext = os.path.splitext(path)[1]
    if kind == VIDEO and ext.lower() not in EXTENSIONS:
        return ".mp4"  # a container liveheat does not write (.mpg, .ts, .wmv): an .mp4
    return ext


def collect(
    inputs: Iterable[str], outdir: str | os.PathLike, *, say: Callable[[str], None] | None = None
) -> list[Job]:
    """The jobs of a batch: every video and image under the inputs, with its output path.

    Args:
        inputs: files, folders (walked recursively; hidden files and folders skipped), globs
            (``**`` recursive) and ``@list.txt`` files (one input a line, ``#`` comments).
        outdir: the output folder; files inside it are never inputs.
        say: where the one-line notes go (a renamed output, a file of no known type);
            default: stderr.

    Returns:
        The jobs, in input order, each input file once.

    Raises:
        LiveheatError: an input that does not exist, a glob or list that gives nothing.
    """
    say = say or _to_stderr
    out_root = os.path.realpath(outdir)
    jobs: list[Job] = []
    seen: set[str] = set()
    taken: dict[str, str] = {}  # key (case-folded) -> the input that has it
    other = 0
    for spec in inputs:
        for path, root in _expand(os.fspath(spec)):
            real = os.path.realpath(path)
            if real in seen or real == out_root or real.startswith(out_root + os.sep):
                continue
            kind = _kind(path)
            if kind is None:
                other += 1
                continue
            seen.add(real)
            rel = os.path.relpath(os.path.abspath(path), os.path.abspath(root))
            if rel.startswith(".."):
                rel = os.path.basename(path)
            stem, ext = os.path.splitext(rel)
            ext = _output_ext(rel, kind)
            key = Path(stem + ext).as_posix()
            n = 2
            while key.casefold() in taken:
                key = Path(f"{stem}-{n}{ext}").as_posix()
                n += 1
            if n > 2:
                first = taken[Path(stem + ext).as_posix().casefold()]
                say(f"liveheat: {path} -> {key} ({Path(stem + ext).as_posix()} is {first}'s)")
            taken[key.casefold()] = path
            jobs.append(Job(os.path.abspath(path), os.path.join(out_root, key), key, kind))
    if other:
        say(f"liveheat: {other} file(s) that are neither video nor image left out")
    return jobs


# ---------------------------------------------------------------------------- manifest
def read_manifest(path: str | os.PathLike) -> dict[str, dict]:
    """The last record of each job (by key) in a manifest; {} when there is none. A line
    cut short (a power cut while appending) is ignored."""
    last: dict[str, dict] = {}
    try:
        with open(path, encoding="utf-8") as f:
            for line in f:
                try:
                    rec = json.loads(line)
                except ValueError:
                    continue
                if isinstance(rec, dict) and isinstance(rec.get("key"), str):
                    last[rec["key"]] = rec
    except FileNotFoundError:
        pass
    except OSError as e:
        raise LiveheatError(f"cannot read {os.fspath(path)!r}: {e.strerror or e}") from None
    return last


def _complete(rec: dict | None, job: Job) -> bool:
    """A job done before: its last record is ok (or skipped as ok) and the output is there
    with the size it had then."""
    if rec is None or rec.get("status") not in ("ok", "skipped") or rec.get("bytes") is None:
        return False
    try:
        return os.path.getsize(job.output) == rec["bytes"]
    except OSError:
        return False


class _Manifest:
    """Appends one JSON line per ended job, flushed and synced as it is written."""

    def __init__(self, path: str) -> None:
        self.path = path
        try:
            self._f = open(path, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()
        except OSError as e:
            raise LiveheatError(f"cannot write {path!r}: {e.strerror or e}") from None

    def append(self, rec: dict) -> None:
        rec = dict(rec, time=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
        self._f.write(json.dumps(rec, ensure_ascii=False) + "\n")
        self._f.flush()
        os.fsync(self._f.fileno())

    def close(self) -> None:
        self._f.close()


# ------------------------------------------------------------------------------- batch
def _tasks(jobs: Sequence[Job]) -> list[tuple[Job, ...]]:
    """One task per video; images in chunks of IMAGES_PER_TASK (a folder's images together)."""
    tasks: list[tuple[Job, ...]] = [(j,) for j in jobs if j.kind == VIDEO]
    images = [j for j in jobs if j.kind == IMAGE]
    for i in range(0, len(images), IMAGES_PER_TASK):
        tasks.append(tuple(images[i : i + IMAGES_PER_TASK]))
    return tasks


def _estimate_frames(job: Job) -> int:
    if job.kind == IMAGE:
        return 1
    try:
        import av

        with av.open(job.input) as f:
            s = f.streams.video[0]
            if s.frames:
                return int(s.frames)
            if s.duration and s.time_base and s.average_rate:
                return max(1, int(s.duration * s.time_base * s.average_rate))
    except Exception:  # noqa: BLE001 - a file that does not open fails later, with its reason
        pass
    return 1


def annotate_batch(
    inputs: Iterable[str | os.PathLike],
    outdir: str | os.PathLike,
    *,
    settings: Settings | None = None,
    ray: str | bool | None = None,
    workers: int | None = None,
    force: bool = False,
    progress: bool | None = None,
    say: Callable[[str], None] | None = None,
) -> BatchReport:
    """Annotate many videos and images into `outdir`, resumably.

    Each video becomes ``outdir/<its path relative to its input root>``, annotated as
    `liveheat run` would (every frame, its sound, the extension's codec); each image an
    annotated image of its own size in its own format. ``outdir/manifest.jsonl`` gets one
    line per file as it ends (input, output, status ok / failed / skipped, frames, fps,
    seconds, the most frequent classes, the error); a later call skips what is complete.

    Args:
        inputs: files, folders, globs and ``@list.txt`` files (see `collect`).
        outdir: the output folder (made if missing). On a Ray cluster, a path every node
            shares.
        settings: the `Settings` for every file (model, drawing, video; `dump_maps` set to
            any text, e.g. "yes", writes ``OUTPUT.maps.npz`` beside each output).
        ray: None or False: a pool of processes here. True or "local": a local Ray;
            "auto": the cluster in RAY_ADDRESS; "ray://HOST:10001": that cluster.
        workers: processes of the local pool (default: the usable cores, at most one per
            task); ignored with Ray (Ray gives each task one CPU).
        force: redo files that are complete.
        progress: one bar for the batch on stderr (default: when stderr is a terminal).
        say: where one-line notes go (default: stderr).

    Returns:
        A `BatchReport` (`report.failed` > 0: some files failed, each with its reason).

    Raises:
        LiveheatError: bad inputs, an unwritable outdir, a Ray that cannot be reached.
        KeyboardInterrupt: Ctrl-C; finished files and their records are kept, unfinished
            ones leave nothing behind, and the next call goes on from there.

    Examples:
        >>> import tempfile, liveheat
        >>> out = tempfile.mkdtemp()
        >>> rep = liveheat.annotate_batch([liveheat.bundled_clip()], out, workers=1,
        ...                               settings=liveheat.Settings(input_size=64))
        >>> rep.ok, rep.failed, rep.records[0]["frames"] > 100
        (1, 0, True)
        >>> liveheat.annotate_batch([liveheat.bundled_clip()], out).skipped
        1
    """
    t0 = time.perf_counter()
    say = say or _to_stderr
    settings = dataclasses.replace(settings) if settings is not None else Settings()
    settings.update(show=False)
    _check_settings(settings)
    out = os.fspath(outdir)
    if os.path.exists(out) and not os.path.isdir(out):
        raise LiveheatError(f"the output folder {out!r} is a file")
    notes: list[str] = []
    jobs = collect([os.fspath(i) for i in inputs], out, say=notes.append)
    if not jobs:
        left = f" ({notes[-1].removeprefix('liveheat: ')})" if notes else ""
        raise LiveheatError(f"no video or image among the inputs{left}")
    for line in notes:
        say(line)
    try:
        os.makedirs(out, exist_ok=True)
        for folder in sorted({os.path.dirname(j.output) for j in jobs}):
            os.makedirs(folder, exist_ok=True)
    except OSError as e:
        raise LiveheatError(f"cannot make {e.filename!r}: {e.strerror or e}") from None
    report = BatchReport(manifest=os.path.join(os.path.realpath(out), MANIFEST))
    before = {} if force else read_manifest(report.manifest)
    manifest = _Manifest(report.manifest)
    todo = []
    for job in jobs:
        rec = before.get(job.key)
        if _complete(rec, job):
            skip = dict(rec, status="skipped", input=job.input, error=None)
            manifest.append(skip)
            report.records.append(skip)
        else:
            todo.append(job)
    bar = _Bar(todo, len(jobs), progress)

    def on_done(records: list[dict]) -> None:
        for rec in records:
            manifest.append(rec)
            report.records.append(rec)
        bar.update(records)

    def on_ray_start(seconds: float) -> None:
        report.ray_start_s = seconds

    try:
        tasks = _tasks(todo)
        if ray not in (None, False):
            from liveheat.pipeline import batch_ray

            address = None if ray is True else str(ray)
            batch_ray.run(tasks, settings, address, on_done, on_ray_start)
        elif tasks:
            from liveheat._common.system import usable_cores

            cores = usable_cores()
            n = min(len(tasks), workers or cores)
            LocalPool(n, settings, threads=max(1, cores // n)).run(tasks, on_done)
    finally:
        bar.close()
        manifest.close()
        report.seconds = time.perf_counter() - t0
    return report


def _check_settings(settings: Settings) -> None:
    """The settings' own rules, before any worker starts (a bad one: one error, not N)."""
    from liveheat.settings.rules import check_fixed_scale

    check_fixed_scale(settings.norm, settings.vmin, settings.vmax)
    if settings.serve:
        raise LiveheatError("batch writes files; --serve is for `liveheat run`")


class _Bar:
    """One bar for the batch: frames (the ETA), files done, frames per second."""

    def __init__(self, todo: Sequence[Job], total_files: int, progress: bool | None) -> None:
        self.files_total = total_files
        self.files_done = total_files - len(todo)
        self.failed = 0
        self.bar = None
        if progress is None:
            progress = sys.stderr.isatty()
        if progress and todo:
            from tqdm import tqdm

            frames = sum(_estimate_frames(j) for j in todo)
            self.bar = tqdm(total=frames, unit="frame", dynamic_ncols=True, leave=False)
            self._describe()

    def _describe(self) -> None:
        failed = f", {self.failed} failed" if self.failed else ""
        self.bar.set_description(f"{self.files_done}/{self.files_total} files{failed}")

    def update(self, records: list[dict]) -> None:
        self.files_done += len(records)
        self.failed += sum(r["status"] == "failed" for r in records)
        if self.bar is not None:
            self.bar.update(sum(max(1, r["frames"]) for r in records))
            self._describe()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
