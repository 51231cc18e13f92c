"""Counters and rates of one run (RunStats), thread-safe."""

from __future__ import annotations

import collections
import os
import sys
import threading
import time
from typing import Any

import numpy as np

_LATENCY_WINDOW = 10_000  # latencies kept for p50/p95 (about 5 minutes at 30 fps)
_RATE_WINDOW = 64  # events kept for the fps figures (about 2 s at 30 fps)


class RunStats:
    """Counters and rates of one run; thread-safe. `snapshot()` gives a plain dict.

    Examples:
        >>> stats = RunStats()
        >>> stats.snapshot()["frames_out"]
        0
    """

    KEYS = (
        "frames_in",
        "frames_out",
        "frames_inferred",
        "dropped",
        "capture_fps",
        "infer_fps",
        "output_fps",
        "latency_ms_p50",
        "latency_ms_p95",
        "heat_age_ms",
        "top_class",
        "top_score",
        "uptime_s",
        "error",
        "queue_max",
        "notice",
    )

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.frames_in = 0
        self.frames_out = 0
        self.frames_inferred = 0
        self.dropped_pipeline = 0  # live frames the runner replaced by newer ones
        self.dropped_source = 0  # stale frames the source dropped (copied from Source.dropped)
        self.heat_age_ms: float | None = None
        self.top_class: str | None = None
        self.top_score: float | None = None
        self.error: str | None = None
        self.notice: str | None = None  # the last live change that was undone, and why
        self.queue_max = 0  # the deepest any queue between two stages has been
        self.maps_path: str | None = None  # where the heatmaps were saved (dump_maps)
        self.maps_count = 0
        self._t_cap: collections.deque[float] = collections.deque(maxlen=_RATE_WINDOW)
        self._t_inf: collections.deque[float] = collections.deque(maxlen=_RATE_WINDOW)
        self._t_out: collections.deque[float] = collections.deque(maxlen=_RATE_WINDOW)
        self._lat: collections.deque[float] = collections.deque(maxlen=_LATENCY_WINDOW)
        self._lat_recent: collections.deque[float] = collections.deque(maxlen=31)
        self._work_recent: collections.deque[float] = collections.deque(maxlen=31)
        self._t0: float | None = None
        self._t1: float | None = None

    # -- updates (called by the stages)
    def _start(self) -> None:
        with self._lock:
            self._t0 = time.monotonic()
            self._t1 = None

    def _finish(self) -> None:
        with self._lock:
            self._t1 = time.monotonic()

    def _captured(self, t: float) -> None:
        with self._lock:
            self.frames_in += 1
            self._t_cap.append(t)

    def _inferred(self, t: float) -> None:
        with self._lock:
            self.frames_inferred += 1
            self._t_inf.append(t)

    def _dropped(self) -> None:
        with self._lock:  # capture and render stages both drop (live)
            self.dropped_pipeline += 1

    def _shown(self, features: Any) -> None:
        """The class of the map now on screen (rendered in frame order)."""
        top = _top1(features)
        if top is not None:
            with self._lock:
                self.top_class, self.top_score = top

    def _processed(self, seconds: float) -> None:
        """One frame's own processing time (inference + drawing), without queue waits."""
        with self._lock:
            self._work_recent.append(seconds * 1000.0)

    def _written(self, t: float, t_cap: float) -> None:
        with self._lock:
            self.frames_out += 1
            self._t_out.append(t)
            ms = (t - t_cap) * 1000.0
            self._lat.append(ms)
            self._lat_recent.append(ms)

    # -- reading
    @property
    def dropped(self) -> int:
        """Frames skipped in a live run (by the source and by the runner)."""
        return self.dropped_source + self.dropped_pipeline

    def recent(self) -> tuple[float, float, float]:
        """(output fps, inference fps, median latency ms) over the last couple of seconds."""
        with self._lock:
            lat = sorted(self._lat_recent)
            return (
                _rate(self._t_out),
                _rate(self._t_inf),
                lat[len(lat) // 2] if lat else 0.0,
            )

    def hud_line(self, live: bool) -> str:
        """The HUD's performance line. Live: output fps, capture-to-output latency, inference
        fps and the map's age. Recorded: output fps and the processing time per frame
        (inference + drawing, the median of the last ones): a recorded run's latency is only
        how long frames wait in the queues."""
        out_fps, inf_fps, lat = self.recent()
        if not live:
            with self._lock:
                work = sorted(self._work_recent)
            ms = work[len(work) // 2] if work else 0.0
            return f"{out_fps:.0f} fps  {ms:.0f} ms/frame"
        line = f"{out_fps:.0f} fps  {lat:.0f} ms"
        line += f"  infer {inf_fps:.0f} fps"
        if self.heat_age_ms is not None:
            line += f"  map age {self.heat_age_ms:.0f} ms"
        return line

    def snapshot(self) -> dict:
        """A consistent dict of every figure (keys in `RunStats.KEYS`).

        fps figures are recent rates (last ~2 s); latency is capture -> output written.

        Examples:
            >>> sorted(RunStats().snapshot()) == sorted(RunStats.KEYS)
            True
        """
        with self._lock:
            lat = np.fromiter(self._lat, dtype=np.float64, count=len(self._lat))
            if self._t0 is None:
                uptime = 0.0
            else:
                uptime = (self._t1 if self._t1 is not None else time.monotonic()) - self._t0
            return {
                "frames_in": self.frames_in,
                "frames_out": self.frames_out,
                "frames_inferred": self.frames_inferred,
                "dropped": self.dropped_source + self.dropped_pipeline,
                "capture_fps": _rate(self._t_cap),
                "infer_fps": _rate(self._t_inf),
                "output_fps": _rate(self._t_out),
                "latency_ms_p50": float(np.percentile(lat, 50)) if lat.size else None,
                "latency_ms_p95": float(np.percentile(lat, 95)) if lat.size else None,
                "heat_age_ms": self.heat_age_ms,
                "top_class": self.top_class,
                "top_score": self.top_score,
                "uptime_s": uptime,
                "error": self.error,
                "queue_max": self.queue_max,
                "notice": self.notice,
            }

    def summary(self, output: str | os.PathLike | None = None, *, note: str | None = None) -> str:
        """One line for the end of a run: frames in and out, fps, latency, output path, the
        saved maps, and a `note` if given.

        Examples:
            >>> RunStats().summary("out.mp4")
            'liveheat: 0 frames in, 0 out, 0 inferred, 0.0 fps; wrote out.mp4'
        """
        s = self.snapshot()
        fps = s["frames_out"] / s["uptime_s"] if s["uptime_s"] > 0 else 0.0
        parts = [
            f"liveheat: {s['frames_in']} frames in, {s['frames_out']} out, "
            f"{s['frames_inferred']} inferred, {fps:.1f} fps"
        ]
        if s["latency_ms_p50"] is not None:
            parts.append(
                f"latency p50 {s['latency_ms_p50']:.0f} ms, p95 {s['latency_ms_p95']:.0f} ms"
            )
        if s["dropped"]:
            parts.append(f"{s['dropped']} dropped")
        line = ", ".join(parts)
        wrote = [os.fspath(output)] if output is not None else []
        if self.maps_path is not None:
            wrote.append(f"{self.maps_path} ({self.maps_count} maps)")
        if wrote:
            line += "; wrote " + ", ".join(wrote)
        if note:
            line += f"; {note}"
        return line


def _rate(times: collections.deque) -> float:
    if len(times) < 2:
        return 0.0
    span = times[-1] - times[0]
    return (len(times) - 1) / span if span > 0 else 0.0


def _top1(features: Any) -> tuple[str, float] | None:
    try:
        top = features.top(1)
    except Exception:  # a model without logits has no classes
        return None
    if not top:
        return None
    _, name, prob = top[0]
    return str(name), float(prob)


def progress_bar(source: Any, max_frames: int | None = None) -> Any:
    """A tqdm bar on stderr for a recorded source (frames; total from the source if known)."""
    from tqdm import tqdm

    total = getattr(source, "frame_count", None)
    if max_frames is not None:
        total = min(total, max_frames) if total else max_frames
    return tqdm(
        total=total or None,
        unit="frame",
        desc="liveheat",
        file=sys.stderr,
        dynamic_ncols=True,
        leave=False,
    )
