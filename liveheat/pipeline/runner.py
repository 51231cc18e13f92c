"""The runner: capture, inference, rendering and outputs overlap in threads."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterable, Sequence
from queue import Empty, Queue
from typing import Any

import numpy as np

from liveheat._common.blas import one_blas_thread
from liveheat.outputs.base import Output
from liveheat.pipeline import stages
from liveheat.pipeline.annotator import Annotator
from liveheat.pipeline.flow import _END, _POLL, Flow, _Inferred, _Job, _Latest
from liveheat.pipeline.preflight import (
    default_workers,
    make_backbone,
    preflight,
)
from liveheat.pipeline.stats import RunStats, progress_bar
from liveheat.settings.fields import Settings

# queue depths: recorded runs want throughput (absorb decode/encode jitter); live runs want
# the newest frame, so at most one frame waits between two stages
_DEPTH_RECORDED = 6
_DEPTH_LIVE = 1
_REPEAT_PERIOD = 1 / 30  # while paused, the last frame is re-rendered this often (keys, live edits)


class Runner(Flow):
    """Annotate a source: capture, inference, rendering and outputs overlap in threads.

    Recorded sources (files, folders): every frame in order, output frame i carries the
    heatmap of input frame i (with `settings.every = N` the map of the last inferred frame).
    Live sources (camera, URL): every captured frame is rendered with the newest heatmap;
    inference runs on the newest frame as fast as it can and never holds the display back.
    Recorded runs infer on `infer_workers` threads (default `default_workers()`), sharing one
    onnxruntime session; the frames are put back in order before rendering.

    The outputs run on the thread that calls `run()` (a window needs the main thread); each
    is an `Output` (liveheat.outputs.base). The runner never closes the source or the outputs
    (the caller owns them; `annotate_video` builds them from the settings). Every frame is
    drawn by one `Annotator` (`runner.annotator`), the same class a script uses frame by frame.
    It stops at the end of the source, on
    `stop()` (thread-safe, fine from a signal handler), when an output's `stop_requested`
    turns true, after `max_frames` outputs, or on the first error in any stage, which
    `run()` re-raises after every thread has been joined.

    Args:
        source: an open `Source` (recorded or live); the caller closes it.
        settings: the `Settings` to follow, read on every frame (live changes show).
        outputs: `Output`s, written in this order on the thread that calls `run()`.
        backbone: a ready `Backbone` (default: made from the settings).
        progress: a progress bar on stderr (default: recorded runs on a terminal).
        max_frames: stop after this many frames written.
        infer_workers: recorded runs: inference threads sharing the session.

    Raises:
        TypeError: an output that is not an `Output`.

    Examples:
        >>> import tempfile, pathlib, liveheat
        >>> from liveheat.outputs.maps import MapsFile
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "maps.npz"
        >>> with liveheat.open_source(liveheat.bundled_clip()) as src, MapsFile(path) as maps:
        ...     stats = Runner(src, Settings(method="eigen", input_size=128), outputs=[maps],
        ...                    max_frames=8).run()
        >>> stats.frames_out, maps.count
        (8, 8)
    """

    def __init__(
        self,
        source: Any,
        settings: Settings | None = None,
        *,
        outputs: Sequence[Any] | Iterable[Any] = (),
        backbone: Any = None,
        progress: bool | None = None,
        max_frames: int | None = None,
        infer_workers: int | None = None,
    ) -> None:
        self.source = source
        super().__init__(settings if settings is not None else Settings())
        self.outputs = list(outputs)
        for out in self.outputs:
            if not isinstance(out, Output):
                raise TypeError(
                    f"{type(out).__name__} is not an output: it needs write(image, frame, "
                    "annotation), notify(text), close(), records and stop_requested "
                    "(subclass liveheat.outputs.base.OutputBase)"
                )
        self.backbone = backbone
        self.live = bool(getattr(source, "live", False))
        self.progress = (not self.live and sys.stderr.isatty()) if progress is None else progress
        self.max_frames = max_frames
        self.infer_workers = infer_workers  # recorded only; None: default_workers()
        self._backbones: list[Any] = []
        self._threads: list[threading.Thread] = []
        self._newest: _Inferred | None = None  # live: the newest inference result
        self.annotator = Annotator(self.settings, live=self.live)  # backbone set in run()
        self._ran = False
        self._bar: Any = None

    # ------------------------------------------------------------------ rendering
    def _draw(self, job: _Job, *, held: bool = False) -> np.ndarray:
        """Draw one frame with the Annotator (`held`: redraw a paused frame for the viewers)."""
        perf = self.stats.hud_line(self.live) if self.settings.hud else None
        image = job.frame.image
        if held:
            ann = self.annotator.redraw(image, job.annotation, perf=perf)
        else:
            if job.features is not None:
                self.stats.heat_age_ms = (time.monotonic() - job.feat_t) * 1000.0
            ann = self.annotator.render(image, job.features, job.feat_index, perf=perf)
            job.annotation = ann
            if ann.fresh:
                self.stats._shown(ann.features)
        if ann.note:
            self._report(ann.note)
        return ann.image

    def _report(self, note: str) -> None:
        """A live change was undone: say so once (stderr, stats, every output's notify)."""
        self.stats.notice = note
        line = f"liveheat: {note}"
        if self._bar is not None:
            self._bar.write(line, file=sys.stderr)
        else:
            print(line, file=sys.stderr, flush=True)
        for out in self.outputs:
            out.notify(note)

    # ------------------------------------------------------------------ run
    def run(self) -> RunStats:
        """Process the source until it ends or the run is stopped; return the stats.

        Blocks; the outputs are written on the calling thread. Every worker thread is joined
        before this returns or raises. A source that ended early (truncated file, camera
        gone) is not an exception: `stats.error` says why.

        Returns:
            The run's `RunStats`.

        Raises:
            RuntimeError: the runner already ran (make a new one).
            LiveheatError: a stage failed (re-raised here after every thread was joined).
        """
        if self._ran:
            raise RuntimeError("a Runner runs once; make a new one")
        self._ran = True
        with one_blas_thread():  # the whole run, every stage's thread: see _common/blas.py
            return self._run()

    def _run(self) -> RunStats:
        workers = 1 if self.live else max(1, int(self.infer_workers or default_workers()))
        if self.backbone is None:
            self.backbone = make_backbone(self.settings, live=self.live)
        self.annotator._backbone = self.backbone
        self.annotator.recording = any(out.records for out in self.outputs)
        # Backbone calls are thread-safe and share one session: workers just call it at once
        self._backbones = [self.backbone] * workers
        preflight(self.settings)
        depth = _DEPTH_LIVE if self.live else _DEPTH_RECORDED
        q_mid: Queue = Queue(maxsize=depth)  # capture -> (infer ->) render
        q_out: Queue = Queue(maxsize=depth)  # render -> outputs
        if self.live:
            latest = _Latest()
            plan = [
                ("capture", stages.capture, (q_mid, latest)),
                ("infer", stages.infer_live, (latest,)),
                ("render", stages.render_stage, (q_mid, q_out)),
            ]
        else:
            q_in: Queue = Queue(maxsize=depth)
            plan = [("capture", stages.capture, (q_in, None))]
            plan += [
                (f"infer-{k}", stages.infer_recorded, (bb, q_in, q_mid))
                for k, bb in enumerate(self._backbones)
            ]
            plan.append(("render", stages.render_stage, (q_mid, q_out)))
        self._bar = bar = progress_bar(self.source, self.max_frames) if self.progress else None
        self.stats._start()
        try:
            for name, fn, args in plan:
                t = threading.Thread(
                    target=fn, args=(self, *args), name=f"liveheat-{name}", daemon=True
                )
                self._threads.append(t)
                t.start()
            self._output_stage(q_out)
        except BaseException as e:
            self._fail(e)
        finally:
            self._stopping = True
            self._join()
            self.stats._finish()
            if bar is not None:
                bar.close()
        source_error = getattr(self.source, "error", None)
        if source_error and self.stats.error is None:
            self.stats.error = str(source_error)
        if self._error is not None:
            if self.stats.error is None:
                self.stats.error = str(self._error) or type(self._error).__name__
            raise self._error
        return self.stats

    def _output_stage(self, q_out: Queue) -> None:
        last: _Job | None = None
        viewers = any(not out.records for out in self.outputs)
        while not self._stopping:
            if self.settings.paused and not viewers:  # files only: nobody to redraw for
                time.sleep(_POLL)
                continue
            if self.settings.paused and last is not None:
                # hold the picture: re-render it with the current settings (live edits show)
                # for the viewers, so a window keeps answering keys; files get no repeats
                t = time.monotonic()
                image = self._draw(last, held=True)
                if self._write(image, last, repeat=True):
                    return
                time.sleep(max(0.0, _REPEAT_PERIOD - (time.monotonic() - t)))
                continue
            try:
                item = q_out.get(timeout=_POLL)
            except Empty:
                continue
            if item is _END:
                return
            self._saw_depth(q_out.qsize() + 1)
            image, last = item
            if self._write(image, last, repeat=False):
                return

    def _write(self, image: np.ndarray, job: _Job, *, repeat: bool) -> bool:
        """Hand one image to every output; True when the run should end."""
        outputs = self.outputs
        for out in outputs:
            if repeat and out.records:
                continue
            out.write(image, job.frame, job.annotation)
        if not repeat:
            self.stats._written(time.monotonic(), job.t_cap)
            if self._bar is not None:
                self._bar.update(1)
            if self.max_frames is not None and self.stats.frames_out >= self.max_frames:
                return True
        return any(out.stop_requested for out in outputs)

    def _join(self) -> None:
        deadline = time.monotonic() + 2.0
        for t in self._threads:
            t.join(max(0.0, deadline - time.monotonic()))
        alive = [t for t in self._threads if t.is_alive()]
        if alive:
            # a live source blocked in read(): closing it releases the capture thread
            close = getattr(self.source, "close", None)
            if close is not None:
                try:
                    close()
                except Exception:  # noqa: BLE001 - already shutting down
                    pass
            for t in alive:
                t.join(3.0)
