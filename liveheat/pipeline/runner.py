"""The runner: capture, inference, rendering and outputs overlap in threads."""

from __future__ import annotations

import dataclasses
import os
import sys
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from queue import Empty, Full, Queue
from typing import Any

import numpy as np

from liveheat._common.blas import one_blas_thread
from liveheat.errors import LiveheatError
from liveheat.pipeline.preflight import (
    _drawing_kwargs,
    _parse_target,
    default_workers,
    make_backbone,
    preflight,
)
from liveheat.pipeline.stats import RunStats
from liveheat.settings.fields import DRAWING_FIELDS, Settings

# queue depths: recorded runs want throughput (absorb decode/encode jitter); live runs want
# the newest frame, so at most one frame waits between two stages
_DEPTH_RECORDED = 6
_DEPTH_LIVE = 1
_POLL = 0.05  # seconds: how often a waiting stage looks at the stop flag
_REPEAT_PERIOD = 1 / 30  # while paused, the last frame is re-rendered this often (keys, live edits)

_END = None  # the sentinel that ends a queue
LIVE_FIELDS = DRAWING_FIELDS  # a change among these that cannot be drawn is undone
_STEADY_NORMS = ("minmax", "fixed")  # norms a smoothed map is drawn with on the smoother's scale


@dataclass(slots=True)
class _Job:
    """One frame on its way through the stages."""

    frame: Any  # liveheat.sources.Frame
    t_cap: float  # time.monotonic() when the frame was captured
    seq: int  # position in this run (0, 1, 2, ... whatever the source's indices)
    features: Any = None  # Features used for this frame's map (None: none yet)
    feat_index: int = -1  # source index of the frame those features came from
    feat_t: float = 0.0  # capture time of that frame
    infer: bool = True  # recorded: run the model on this frame (else reuse the last map)
    # what the render stage drew for this frame, so a paused picture is redrawn from it
    heat: Any = None  # the (smoothed) map drawn on this frame
    heat_key: tuple | None = None  # (method, target) it was computed with
    scale: tuple[float, float] | None = None  # (vmin, vmax) of a smoothed map's steady scale


@dataclass(frozen=True, slots=True)
class _Inferred:
    """Live: what one inference produced, published whole by the inference thread (never
    changed afterwards); the render stage copies it into its own job."""

    features: Any
    index: int  # source index of the frame the features came from
    t: float  # capture time of that frame


def _range(heat: np.ndarray) -> tuple[float, float]:
    return (float(np.min(heat)), float(np.max(heat))) if heat.size else (0.0, 1.0)


class _Latest:
    """A one-slot mailbox: `put` replaces, `wait_newer` blocks until something newer arrives."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._item: _Job | None = None
        self._closed = False

    def put(self, item: _Job) -> None:
        with self._cond:
            self._item = item
            self._cond.notify_all()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def wait_newer(self, seq: int, timeout: float) -> tuple[_Job | None, bool]:
        """(newest job with .seq > seq or None on timeout, closed)."""
        with self._cond:
            if self._item is None or self._item.seq <= seq:
                self._cond.wait(timeout)
            item = self._item if self._item is not None and self._item.seq > seq else None
            return item, self._closed


def _records(out: Any) -> bool:
    """True for outputs that record every frame (a file; class attribute `records = True`):
    they never get paused repeats. Viewers (a window, the stream server) do."""
    return bool(getattr(out, "records", False))


def _changed(snap: Settings, good: Settings) -> dict:
    """The live fields whose value in `snap` differs from `good`: {name: value in snap}."""
    return {k: getattr(snap, k) for k in LIVE_FIELDS if getattr(snap, k) != getattr(good, k)}


class Runner:
    """Annotate a source: capture, inference, rendering and outputs overlap in threads.

    Recorded sources (files, folders): every frame in order, output frame i carries the
    heatmap of input frame i (with `settings.every = N` the map of the last inferred frame).
    Live sources (camera, URL): every captured frame is rendered with the newest heatmap;
    inference runs on the newest frame as fast as it can and never holds the display back.
    Recorded runs infer on `infer_workers` threads (default `default_workers()`), sharing one
    onnxruntime session; the frames are put back in order before rendering.

    The outputs run on the thread that calls `run()` (a window needs the main thread); each
    has `write(image, frame)`. The runner never closes the source or the outputs (the caller
    owns them) but writes `settings.dump_maps` itself. It stops at the end of the source, on
    `stop()` (thread-safe, fine from a signal handler), when an output's `stop_requested`
    turns true, after `max_frames` outputs, or on the first error in any stage, which
    `run()` re-raises after every thread has been joined.

    Examples:
        >>> from liveheat.sources import open_source
        >>> from liveheat.outputs import VideoSink
        >>> with open_source("clip.mp4") as src, VideoSink(
        ...     "out.mp4", fps=src.fps, size=src.size) as sink:  # doctest: +SKIP
        ...     stats = Runner(src, Settings(method="eigen"), outputs=[sink]).run()
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
        self.settings = settings if settings is not None else Settings()
        self.outputs = list(outputs)
        self.backbone = backbone
        self.live = bool(getattr(source, "live", False))
        self.progress = (not self.live and sys.stderr.isatty()) if progress is None else progress
        self.max_frames = max_frames
        self.infer_workers = infer_workers  # recorded only; None: default_workers()
        self._backbones: list[Any] = []
        self.stats = RunStats()
        self._stopping = False  # a plain flag: safe to set from a signal handler
        self._error: BaseException | None = None
        self._error_lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._newest: _Inferred | None = None  # live: the newest inference result
        self._maps: list[np.ndarray] = []
        self._map_index: list[int] = []
        # render cache: the map is recomputed only when features, method, target or smoothing change
        self._c_feats: Any = None
        self._c_key: tuple | None = None
        self._c_heat: np.ndarray | None = None
        self._c_raw_range: tuple[float, float] = (0.0, 1.0)
        self._smoother: Any = None
        self._smoother_key: tuple | None = None
        self._ran = False
        self._bar: Any = None
        self._render_lock = threading.Lock()
        self._c_class: tuple = (None, None, "")
        self._good: Settings | None = None  # the last settings a frame was drawn with

    # ------------------------------------------------------------------ control
    def stop(self) -> None:
        """Ask every stage to finish (thread-safe and signal-safe); `run()` then returns."""
        self._stopping = True

    @property
    def stopping(self) -> bool:
        """True once a stop was requested (or an error stopped the run)."""
        return self._stopping

    def _saw_depth(self, depth: int) -> None:
        if depth > self.stats.queue_max:
            self.stats.queue_max = depth

    def _fail(self, exc: BaseException) -> None:
        with self._error_lock:
            if self._error is None:
                self._error = exc
        self._stopping = True

    # ------------------------------------------------------------------ queue helpers
    def _put(self, q: Queue, item: Any) -> bool:
        while not self._stopping:
            try:
                q.put(item, timeout=_POLL)
                return True
            except Full:
                continue
        return False

    def _put_end(self, q: Queue) -> None:
        # the sentinel must get through unless the run is stopping anyway
        self._put(q, _END)

    def _put_newest(self, q: Queue, item: Any) -> None:
        """Live: never wait; replace a frame nobody took yet by the newer one (counted in
        `dropped`)."""
        while True:
            try:
                q.put_nowait(item)
                return
            except Full:
                try:
                    old = q.get_nowait()
                except Empty:
                    continue
                if old is not _END and not self.settings.paused:
                    self.stats._dropped()

    def _get(self, q: Queue) -> tuple[bool, Any]:
        """(True, item) or (False, None) when stopping."""
        while not self._stopping:
            try:
                return True, q.get(timeout=_POLL)
            except Empty:
                continue
        return False, None

    def _pace(self, t_next: float) -> float:
        """Sleep until t_next (stop-aware) following settings.max_fps; return the next deadline."""
        max_fps = self.settings.max_fps
        if not max_fps:
            return 0.0
        now = time.monotonic()
        while now < t_next and not self._stopping:
            time.sleep(min(_POLL, t_next - now))
            now = time.monotonic()
        return max(t_next, now - 1.0 / max_fps) + 1.0 / max_fps

    def _wait_unpaused(self) -> None:
        while self.settings.paused and not self._stopping:
            time.sleep(_POLL)

    # ------------------------------------------------------------------ stages
    def _capture(self, q_next: Queue, latest: _Latest | None) -> None:
        try:
            t_next = 0.0
            seq = 0
            since: int | None = None
            while not self._stopping:
                if not self.live and self.max_frames is not None and seq >= self.max_frames:
                    break  # recorded: nothing is dropped, so N read = N written
                t_next = self._pace(t_next)
                frame = self.source.read()
                if frame is None:
                    break
                now = time.monotonic()
                # live frames carry their capture time; recorded ones their source time
                t_cap = float(frame.timestamp) if self.live else now
                if self.live and not (now - 5.0 < t_cap <= now + 0.01):
                    t_cap = now  # a source whose clock is not time.monotonic()
                self.stats._captured(now)
                job = _Job(frame=frame, t_cap=t_cap, seq=seq)
                seq += 1
                if latest is None:  # recorded: every Nth frame is inferred, decided in order
                    every = max(1, int(self.settings.every or 1))
                    job.infer = since is None or since + 1 >= every
                    since = 0 if job.infer else since + 1
                if latest is not None:
                    latest.put(job)
                    self._put_newest(q_next, job)
                elif not self._put(q_next, job):
                    break
                self.stats.dropped_source = int(getattr(self.source, "dropped", 0) or 0)
        except BaseException as e:  # noqa: BLE001 - handed to run()
            self._fail(e)
        finally:
            self.stats.dropped_source = int(getattr(self.source, "dropped", 0) or 0)
            if latest is not None:
                latest.close()
                self._put_newest(q_next, _END)
            else:
                self._put_end(q_next)

    def _infer_recorded(self, backbone: Any, q_in: Queue, q_out: Queue) -> None:
        """One of the inference workers: the frames marked for inference get Features."""
        try:
            while True:
                ok, job = self._get(q_in)
                if not ok:
                    break
                if job is _END:
                    self._put(q_in, _END)  # for the sibling workers
                    break
                if job.infer:
                    job.features = backbone(job.frame.image)
                    self.stats._inferred(time.monotonic())
                    job.feat_index, job.feat_t = job.frame.index, job.t_cap
                if not self._put(q_out, job):
                    break
        except BaseException as e:  # noqa: BLE001
            self._fail(e)
        finally:
            self._put_end(q_out)

    def _infer_live(self, latest: _Latest) -> None:
        try:
            seq = -1
            while not self._stopping:
                if self.settings.paused:
                    self._wait_unpaused()
                    continue
                every = max(1, int(self.settings.every or 1))
                job, closed = latest.wait_newer(seq + every - 1, _POLL)
                if job is None:
                    if closed:
                        break
                    continue
                seq = job.seq
                # the job belongs to the render stage: only read here, never written
                features = self._backbones[0](job.frame.image)
                self.stats._inferred(time.monotonic())
                self._newest = _Inferred(features, job.frame.index, job.t_cap)  # atomic swap
        except BaseException as e:  # noqa: BLE001
            self._fail(e)

    def _render_stage(self, q_in: Queue, q_out: Queue) -> None:
        # recorded: the inference workers may finish out of order; `pending` puts the frames
        # back in order and gives the frames between two inferences the last map (--every)
        pending: dict[int, _Job] = {}
        expect, ends, last = 0, 0, None
        workers = 1 if self.live else len(self._backbones)
        try:
            while not self._stopping:
                if self.settings.paused:  # the output stage holds the picture meanwhile
                    time.sleep(_POLL)
                    continue
                try:
                    item = q_in.get(timeout=_POLL)
                except Empty:
                    continue
                if item is _END:
                    ends += 1
                    if ends >= workers:
                        break
                    continue
                self._saw_depth(q_in.qsize() + 1)
                if self.live:
                    newest = self._newest
                    if newest is not None:
                        item.features, item.feat_index, item.feat_t = (
                            newest.features,
                            newest.index,
                            newest.t,
                        )
                    ready = [item]
                else:
                    pending[item.seq] = item
                    ready = []
                    while expect in pending:
                        job = pending.pop(expect)
                        expect += 1
                        if job.infer:
                            last = job
                        elif last is not None:
                            job.features, job.feat_index, job.feat_t = (
                                last.features,
                                last.feat_index,
                                last.feat_t,
                            )
                        ready.append(job)
                for job in ready:
                    self._wait_unpaused()  # no frame is drawn with settings tried while paused
                    image = self._draw(job)
                    if self.live:  # newest wins: a slow output shows fresh frames, not old ones
                        self._put_newest(q_out, (image, job))
                    elif not self._put(q_out, (image, job)):
                        return
        except BaseException as e:  # noqa: BLE001
            self._fail(e)
        finally:
            self._put_end(q_out)

    # ------------------------------------------------------------------ rendering
    def _draw(self, job: _Job, *, held: bool = False) -> np.ndarray:
        """Render with the current settings; a live change that cannot be drawn is undone.

        A LiveheatError or ValueError with settings that differ from the last ones that drew
        a frame (e.g. method 'cam' on a layer without a classifier, channel:99999) reverts the
        changed fields in the shared Settings, says so once (stderr, `stats.notice`, a toast
        in a window) and draws the frame with the last good settings. The same error with
        unchanged settings (the first frame, say) ends the run as before.
        """
        with self._render_lock:  # (the snapshot too: a change is judged, and undone, once)
            snap = self.settings.snapshot()
            try:
                image = self._render(job, snap, held=held)
            except (LiveheatError, ValueError) as e:
                good = self._good
                changed = {} if good is None else _changed(snap, good)
                if not changed:
                    raise
                self._undo(changed, good, e)
                snap = dataclasses.replace(snap, **{k: getattr(good, k) for k in changed})
                image = self._render(job, snap, held=held)
            self._good = snap
        return image

    def _undo(self, changed: dict, good: Settings, error: BaseException) -> None:
        """Put the fields of a live change back (unless changed again since) and say why."""
        now = self.settings.snapshot()
        self.settings.update(
            **{k: getattr(good, k) for k, v in changed.items() if getattr(now, k) == v}
        )
        what = ", ".join(f"{k}={v!r}" for k, v in changed.items())
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        note = f"live change undone ({what}): {reason}"
        self.stats.notice = note
        line = f"liveheat: {note}"
        if self._bar is not None:
            from tqdm import tqdm

            tqdm.write(line, file=sys.stderr)
        else:
            print(line, file=sys.stderr, flush=True)
        for out in self.outputs:
            say = getattr(getattr(out, "controls", None), "say", None)
            if callable(say):
                say(note)

    def _heat(self, job: _Job, snap: Settings) -> np.ndarray | None:
        """The map for this job's features under these settings (cached between frames).

        The one place that feeds the smoother, the dumped maps and the top class: called once
        per frame in frame order, never for a paused picture. Nothing changes unless it
        succeeds (a bad live setting leaves no trace).
        """
        feats = job.features
        if feats is None:
            return None
        from liveheat.model.heatmaps import heatmap
        from liveheat.model.smoothing import TemporalSmoother

        target = _parse_target(snap.target)
        key = (snap.method, target, float(snap.smooth))
        if feats is self._c_feats and key == self._c_key:
            return self._c_heat
        new_features = feats is not self._c_feats
        raw = heatmap(feats, method=snap.method, target=target)
        heat = raw
        if snap.smooth > 0:
            # a new target/method/factor starts a fresh smoother (the old scale means nothing)
            if self._smoother is None or key != self._smoother_key:
                self._smoother, self._smoother_key = TemporalSmoother(float(snap.smooth)), key
            heat = self._smoother(raw, features=feats)  # scene cuts seen in pooled features
        if new_features:
            self.stats._shown(feats)
            if snap.dump_maps:
                self._maps.append(np.asarray(raw, np.float32))
                self._map_index.append(int(job.feat_index))
        self._c_feats, self._c_key, self._c_heat = feats, key, heat
        self._c_raw_range = _range(heat)
        return heat

    def _held_heat(
        self, job: _Job, snap: Settings
    ) -> tuple[np.ndarray | None, tuple[float, float], bool]:
        """(map, (lo, hi), steady scale) to redraw a held (paused) frame: the map drawn on it,
        or, after a method/target change, its raw map; smoother, dump and caches untouched."""
        feats = job.features
        if feats is None:
            return None, (0.0, 1.0), False
        target = _parse_target(snap.target)
        if job.heat is not None and job.heat_key == (snap.method, target):
            if job.scale is not None and snap.norm in _STEADY_NORMS:
                return job.heat, job.scale, True
            return job.heat, _range(job.heat), False
        from liveheat.model.heatmaps import heatmap

        raw = heatmap(feats, method=snap.method, target=target)
        return raw, _range(raw), False

    def _render(self, job: _Job, snap: Settings, *, held: bool = False) -> np.ndarray:
        """Draw one frame. `held`: redraw a paused frame for the viewers (display only)."""
        from liveheat.draw.overlay import overlay
        from liveheat.draw.panels import panels

        frame = job.frame.image
        if held:
            heat, (lo, hi), steady = self._held_heat(job, snap)
        else:
            heat = self._heat(job, snap)
            lo, hi = self._c_raw_range
            # smoothed maps are drawn on the smoother's steady scale: no frame-to-frame flicker
            steady = (
                heat is not None
                and snap.smooth > 0
                and self._smoother is not None
                and snap.norm in _STEADY_NORMS
            )
            if steady:
                lo, hi = float(self._smoother.vmin), float(self._smoother.vmax)
            job.heat, job.heat_key = heat, (snap.method, _parse_target(snap.target))
            job.scale = (lo, hi) if steady else None
        kw = _drawing_kwargs(snap)
        if steady:
            kw.update(norm="fixed", vmin=lo, vmax=hi)
        if heat is None:
            image = frame.copy()
        elif snap.panels:
            image = panels(frame, heat, **kw)
        else:
            image = overlay(frame, heat, **kw)
        if heat is not None and not held:
            self.stats.heat_age_ms = (time.monotonic() - job.feat_t) * 1000.0
        if snap.hud:
            self._draw_hud(image, job, snap, heat, lo, hi, cache=not held)
        return image

    def _class_line(self, features: Any, target: Any, *, cache: bool = True) -> str:
        """'tabby 53%' for the frame's own features (top-1, or the target); cached per map
        (not for a held frame's redraw)."""
        key = (id(features), target)
        if self._c_class[0] == key and self._c_class[1] is features:
            return self._c_class[2]
        text = ""
        probs = features.probs() if hasattr(features, "probs") else None
        if probs is not None:
            if target is None:
                index = int(probs.argmax())
            else:
                from liveheat.model.heatmaps import target_index

                index = target_index(features, _parse_target(target))
            name = features.label(index).split(",")[0]  # 'gorilla, Gorilla gorilla' -> 'gorilla'
            text = f"{name} {float(probs[index]):.0%}" + ("" if target is None else " (target)")
        if cache:
            self._c_class = (key, features, text)
        return text

    def _draw_hud(self, image, job, snap, heat, lo, hi, *, cache: bool = True) -> None:
        from liveheat.draw.hud import draw_hud

        st = self.stats
        out_fps, inf_fps, lat = st.recent()
        lines = []
        if heat is None:
            lines.append("waiting for the first heatmap")
        else:
            label = self._class_line(job.features, snap.target, cache=cache)
            if label:
                lines.append(label)
            layer = getattr(job.features, "layer", None) or snap.layer or ""
            lines.append(f"{snap.method} @ {layer}" if layer else snap.method)
        perf = f"{out_fps:.0f} fps  {lat:.0f} ms"
        if self.live:
            perf += f"  infer {inf_fps:.0f} fps"
            if heat is not None and st.heat_age_ms is not None:
                perf += f"  map age {st.heat_age_ms:.0f} ms"
        lines.append(perf)
        # panels carry their own labelled colour bar
        colorbar = (snap.colormap, lo, hi) if heat is not None and not snap.panels else None
        draw_hud(image, lines, colorbar=colorbar)

    # ------------------------------------------------------------------ run
    def run(self) -> RunStats:
        """Process the source until it ends or the run is stopped; return the stats.

        Blocks; the outputs are written on the calling thread. Every worker thread is joined
        before this returns or raises. A source that ended early (truncated file, camera
        gone) is not an exception: `stats.error` says why.

        Examples:
            >>> stats = Runner(src, Settings(), outputs=[sink]).run()  # doctest: +SKIP
            >>> stats.snapshot()["frames_out"]  # doctest: +SKIP
            132
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
        # Backbone calls are thread-safe and share one session: workers just call it at once
        self._backbones = [self.backbone] * workers
        preflight(self.settings)
        depth = _DEPTH_LIVE if self.live else _DEPTH_RECORDED
        q_mid: Queue = Queue(maxsize=depth)  # capture -> (infer ->) render
        q_out: Queue = Queue(maxsize=depth)  # render -> outputs
        if self.live:
            latest = _Latest()
            stages = [
                ("capture", self._capture, (q_mid, latest)),
                ("infer", self._infer_live, (latest,)),
                ("render", self._render_stage, (q_mid, q_out)),
            ]
        else:
            q_in: Queue = Queue(maxsize=depth)
            stages = [("capture", self._capture, (q_in, None))]
            stages += [
                (f"infer-{k}", self._infer_recorded, (bb, q_in, q_mid))
                for k, bb in enumerate(self._backbones)
            ]
            stages.append(("render", self._render_stage, (q_mid, q_out)))
        self._bar = bar = self._progress_bar()
        self.stats._start()
        try:
            for name, fn, args in stages:
                t = threading.Thread(target=fn, args=args, name=f"liveheat-{name}", daemon=True)
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
            try:
                self._save_maps()
            except Exception as e:  # noqa: BLE001 - reported like any other stage error
                self._fail(e)
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
        viewers = any(not _records(out) for out in self.outputs)
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
            if repeat and _records(out):
                continue
            controls = getattr(out, "controls", None)  # a window: [ and ] need the classes
            if controls is not None and job.features is not None:
                controls.features = job.features
            out.write(image, job.frame)
        if not repeat:
            self.stats._written(time.monotonic(), job.t_cap)
            if self._bar is not None:
                self._bar.update(1)
            if self.max_frames is not None and self.stats.frames_out >= self.max_frames:
                return True
        return any(getattr(out, "stop_requested", False) for out in outputs)

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

    def _progress_bar(self) -> Any:
        if not self.progress:
            return None
        from tqdm import tqdm

        total = getattr(self.source, "frame_count", None)
        if self.max_frames is not None:
            total = min(total, self.max_frames) if total else self.max_frames
        return tqdm(
            total=total or None,
            unit="frame",
            desc="liveheat",
            file=sys.stderr,
            dynamic_ncols=True,
            leave=False,
        )

    def _save_maps(self) -> None:
        """Write the maps (even of a stopped run) to a temporary file, then rename it."""
        path = self.settings.dump_maps
        if not path:
            return
        maps = self._maps
        if maps:
            h, w = maps[0].shape
            import cv2

            stack = np.stack(
                [m if m.shape == (h, w) else cv2.resize(m, (w, h)) for m in maps]
            ).astype(np.float32)
        else:
            stack = np.zeros((0, 0, 0), np.float32)
        path = os.fspath(path)
        folder, name = os.path.split(os.path.abspath(path))
        tmp = os.path.join(folder, f".{name[:-4]}.{os.getpid()}.tmp.npz")  # savez keeps .npz
        try:
            np.savez(tmp, maps=stack, frames=np.asarray(self._map_index, np.int64))
            os.replace(tmp, path)
        except OSError as e:
            raise LiveheatError(f"cannot write maps {path!r}: {e.strerror or e}") from None
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
        self.stats.maps_path, self.stats.maps_count = path, len(self._maps)


def run_video(
    source: Any,
    settings: Settings | None = None,
    *,
    outputs: Sequence[Any] | Iterable[Any] = (),
    backbone: Any = None,
    progress: bool | None = None,
    max_frames: int | None = None,
) -> RunStats:
    """Annotate a source with heatmaps and write every frame to `outputs`; return the stats.

    `source` is a `Source` or anything `open_source` takes (a path, a camera index, a URL);
    a source opened here is closed here. Outputs are the caller's (each has
    `write(image, frame)`); `settings.output`/`settings.show` are the command line's business.

    Examples:
        >>> import liveheat
        >>> from liveheat.outputs import VideoSink
        >>> with VideoSink("out.mp4", fps=25, size=(1280, 720)) as sink:  # doctest: +SKIP
        ...     stats = liveheat.run_video("liveheat/data/bigbuckbunny.mp4", outputs=[sink])
        >>> stats.snapshot()["frames_out"]  # doctest: +SKIP
        132
    """
    if hasattr(source, "read") and hasattr(source, "live"):
        runner = Runner(
            source,
            settings,
            outputs=outputs,
            backbone=backbone,
            progress=progress,
            max_frames=max_frames,
        )
        return runner.run()
    from liveheat.sources.source import open_source

    with open_source(source) as src:
        runner = Runner(
            src,
            settings,
            outputs=outputs,
            backbone=backbone,
            progress=progress,
            max_frames=max_frames,
        )
        return runner.run()
