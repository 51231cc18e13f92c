"""The worker side of `liveheat batch`: one task (a video, or a chunk of images) in a process
that keeps its model loaded, and the local pool of such processes.

A task is a tuple of `Job`s; running it gives one manifest record (a dict) per job. The same
`run_task` runs in the local pool's processes and in Ray's workers, so both annotate alike.
"""

from __future__ import annotations

import collections
import dataclasses
import multiprocessing
import os
import queue
import signal
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from liveheat._common.files import temporaries_of
from liveheat.errors import LiveheatError
from liveheat.outputs.base import OutputBase
from liveheat.outputs.encode import remove_temporary
from liveheat.settings.fields import Settings

VIDEO = "video"
IMAGE = "image"


@dataclass(frozen=True)
class Job:
    """One input file and the file it becomes.

    Attributes:
        input: the input file (absolute path).
        output: the annotated file (absolute path, inside the batch's OUTDIR).
        key: `output` relative to OUTDIR (POSIX separators): the manifest's name for the job.
        kind: ``"video"`` or ``"image"``.
    """

    input: str
    output: str
    key: str
    kind: str

    def maps_path(self) -> str:
        """Where `--dump-maps` puts this job's maps: beside its output, ``NAME.EXT.maps.npz``."""
        return self.output + ".maps.npz"


# a worker process keeps one Backbone per model setting: loaded once, used by every task
_BACKBONES: dict[tuple, Any] = {}


def _backbone(settings: Settings) -> Any:
    from liveheat.pipeline.preflight import make_backbone

    key = (settings.model, settings.layer, settings.threads, settings.input_size, settings.device)
    if key not in _BACKBONES:
        _BACKBONES[key] = make_backbone(settings)
    return _BACKBONES[key]


class _Classes(OutputBase):
    """An output that counts the top class of each new map (for the manifest)."""

    records = True

    def __init__(self) -> None:
        self.counts: collections.Counter[str] = collections.Counter()

    def write(self, image: Any, frame: Any = None, annotation: Any = None) -> None:
        feats = getattr(annotation, "features", None)
        if feats is not None and annotation.fresh:
            top = feats.top(1)
            if top:
                self.counts[top[0][1]] += 1


def _one_line(e: BaseException) -> str:
    msg = " ".join(str(e).split())
    if isinstance(e, LiveheatError):
        return msg or "failed"
    return f"{type(e).__name__}: {msg}" if msg else type(e).__name__


def _record(job: Job, status: str, **fields: Any) -> dict:
    rec = {"input": job.input, "output": job.output, "key": job.key, "kind": job.kind}
    rec.update(status=status, frames=0, fps=0.0, seconds=0.0, classes=[], bytes=None, error=None)
    rec.update(fields)
    return rec


def _video(job: Job, settings: Settings, bb: Any) -> dict:
    from liveheat.pipeline.video import run_video

    classes = _Classes()
    s = dataclasses.replace(settings, output=job.output, show=False, serve=None)
    t0 = time.perf_counter()
    stats = run_video(job.input, s, outputs=[classes], backbone=bb, progress=False)
    seconds = time.perf_counter() - t0
    error = stats.snapshot()["error"]
    return _record(
        job,
        "failed" if error else "ok",
        frames=stats.frames_out,
        fps=round(stats.frames_out / seconds, 2) if seconds > 0 else 0.0,
        seconds=round(seconds, 3),
        classes=classes.counts.most_common(3),
        bytes=os.path.getsize(job.output) if os.path.exists(job.output) else None,
        error=(error + f"; the {stats.frames_out} frames before it were written")
        if error
        else None,
    )


def _image(job: Job, settings: Settings, bb: Any) -> dict:
    from liveheat._common.imagefiles import read_image, write_image
    from liveheat.outputs.maps import MapsFile
    from liveheat.pipeline.annotator import Annotator
    from liveheat.sources.base import Frame

    t0 = time.perf_counter()
    image = read_image(job.input)
    ann = Annotator(settings, backbone=bb)
    a = ann.annotate(Frame(image=_as_frame(image), index=0, timestamp=0.0, fps=None))
    write_image(job.output, a.image)
    outputs = [_Classes()] + ([MapsFile(job.maps_path())] if settings.dump_maps else [])
    for out in outputs:
        with out:
            out.write(a.image, None, a)
    seconds = time.perf_counter() - t0
    return _record(
        job,
        "ok",
        frames=1,
        fps=round(1 / seconds, 2) if seconds > 0 else 0.0,
        seconds=round(seconds, 3),
        classes=outputs[0].counts.most_common(3),
        bytes=os.path.getsize(job.output),
    )


def _as_frame(image: Any) -> Any:
    from liveheat._common.images import as_bgr_u8

    try:
        return as_bgr_u8(image)
    except ValueError as e:
        raise LiveheatError(str(e)) from None


def run_task(jobs: Sequence[Job], settings: Settings, threads: int | None = None) -> list[dict]:
    """Annotate every job of one task; a manifest record per job, in order. Never raises for
    a bad input: its record is ``failed`` with the reason in one line.

    Args:
        jobs: one video job, or a chunk of image jobs.
        settings: the batch's settings (`output`, `dump_maps` and `show` are set per job).
        threads: onnxruntime threads when the settings leave them open (a worker's share).

    Returns:
        One record (a dict for the manifest) per job.
    """
    if settings.threads is None and threads:
        settings = dataclasses.replace(settings, threads=int(threads))
    out = []
    for job in jobs:
        s = dataclasses.replace(settings, dump_maps=job.maps_path() if settings.dump_maps else None)
        t0 = time.perf_counter()
        try:
            bb = _backbone(s)
            out.append(_video(job, s, bb) if job.kind == VIDEO else _image(job, s, bb))
        except Exception as e:  # noqa: BLE001 - one bad file never stops the batch
            took = round(time.perf_counter() - t0, 3)
            out.append(_record(job, "failed", seconds=took, error=_one_line(e)))
    return out


# ------------------------------------------------------------------------- the local pool
def remove_temporaries(job: Job) -> None:
    """Remove the temporary files an unfinished job leaves beside its outputs."""
    for path in (job.output, job.maps_path()):
        for tmp in temporaries_of(path):
            remove_temporary(tmp)


def _worker(tasks: Any, results: Any, settings: Settings, threads: int) -> None:
    """A pool process: tasks in, records out, until the None sentinel. Ctrl-C is the parent's
    to handle (it stops the workers itself), so a terminal's SIGINT is ignored here."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    while True:
        item = tasks.get()
        if item is None:
            return
        task_id, jobs = item
        results.put(("start", task_id, os.getpid()))
        results.put(("done", task_id, run_task(jobs, settings, threads)))


class LocalPool:
    """Worker processes on this machine, each with its model loaded once.

    Args:
        workers: how many processes.
        settings: the batch's settings.
        threads: onnxruntime threads per process (when the settings leave them open).
    """

    def __init__(self, workers: int, settings: Settings, threads: int) -> None:
        self.workers = max(1, int(workers))
        self.settings = settings
        self.threads = threads
        self._ctx = multiprocessing.get_context("spawn")
        self._procs: list[Any] = []
        self._stillborn = 0

    def run(self, tasks: Iterable[Sequence[Job]], on_done: Callable[[list[dict]], None]) -> None:
        """Run every task; `on_done(records)` in this process as each task ends. A worker that
        dies (a crash in a native library) fails its task and is replaced. On an exception
        here (Ctrl-C), the workers are stopped and the temporary files of the tasks they had
        started are removed before it propagates."""
        todo = dict(enumerate(tasks))
        if not todo:
            return
        task_q, result_q = self._ctx.Queue(), self._ctx.Queue()
        for item in todo.items():
            task_q.put(item)
        holding: dict[int, int] = {}  # pid -> task id
        try:
            for _ in range(min(self.workers, len(todo))):
                self._start(task_q, result_q)
            while todo:
                try:
                    kind, task_id, payload = result_q.get(timeout=0.5)
                except queue.Empty:
                    self._replace_dead(holding, todo, task_q, result_q, on_done)
                    continue
                if kind == "start":
                    holding[payload] = task_id
                else:
                    holding = {p: t for p, t in holding.items() if t != task_id}
                    if todo.pop(task_id, None) is not None:
                        on_done(payload)
            for _ in self._procs:
                task_q.put(None)
            for p in self._procs:
                p.join(timeout=10)
        except BaseException:
            self._stop()
            for task_id in set(holding.values()):
                for job in todo.get(task_id, ()):
                    remove_temporaries(job)
            raise
        finally:
            self._stop()
            task_q.close()
            result_q.close()

    def _start(self, task_q: Any, result_q: Any) -> None:
        p = self._ctx.Process(
            target=_worker,
            args=(task_q, result_q, self.settings, self.threads),
            name="liveheat-batch",
            daemon=True,
        )
        p.start()
        self._procs.append(p)

    def _replace_dead(self, holding, todo, task_q, result_q, on_done) -> None:
        for p in list(self._procs):
            if p.exitcode is None:
                continue
            self._procs.remove(p)
            task_id = holding.pop(p.pid, None)
            if task_id is None:  # died before taking a task: it cannot start at all
                self._stillborn += 1
                if self._stillborn >= 3:
                    why = _exit_reason(p.exitcode)
                    raise LiveheatError(
                        f"the batch's worker processes do not start (they {why}; run with "
                        "LIVEHEAT_DEBUG=1 to see why)"
                    )
            if task_id is not None and task_id in todo:
                jobs = todo.pop(task_id)
                for job in jobs:
                    remove_temporaries(job)
                why = _exit_reason(p.exitcode)
                on_done([_record(job, "failed", error=f"the worker {why}") for job in jobs])
            if todo:
                self._start(task_q, result_q)

    def _stop(self) -> None:
        for p in self._procs:
            if p.is_alive():
                p.terminate()
        for p in self._procs:
            p.join(timeout=5)
            if p.is_alive():
                p.kill()
                p.join(timeout=5)
        self._procs.clear()


def _exit_reason(code: int) -> str:
    if code < 0:
        try:
            return f"died of {signal.Signals(-code).name}"
        except ValueError:
            return f"died of signal {-code}"
    return f"exited with status {code}"
