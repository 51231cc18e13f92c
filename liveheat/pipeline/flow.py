"""The runner's plumbing: the stop flag, the first error, and bounded queues that never block
a stopping run (plus the live one-slot mailbox)."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from queue import Empty, Full, Queue
from typing import Any

from liveheat.pipeline.stats import RunStats
from liveheat.settings.fields import Settings

_POLL = 0.05  # seconds: how often a waiting stage looks at the stop flag
_END = None  # the sentinel that ends a queue
MAX_IN_FLIGHT = 24  # recorded: frames between capture and drawing (3 queues of 6, workers)


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
    work_s: float = 0.0  # seconds of inference spent on this frame (recorded)
    annotation: Any = None  # what the render stage drew (a paused picture is redrawn from it)


@dataclass(frozen=True, slots=True)
class _Inferred:
    """Live: what one inference produced, published whole by the inference thread (never
    changed afterwards); the render stage copies it into its own job."""

    features: Any
    index: int  # source index of the frame the features came from
    t: float  # capture time of that frame


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


class Flow:
    """What every stage thread shares: settings, stats, the stop flag and the first error."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.stats = RunStats()
        self._stopping = False  # a plain flag: safe to set from a signal handler
        self._error: BaseException | None = None
        self._error_lock = threading.Lock()
        # recorded runs: frames read but not yet drawn. Bounded, so that a starved inference
        # worker cannot let the others run ahead and fill the reorder buffer without end
        self._slots = threading.Semaphore(MAX_IN_FLIGHT)

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

    def _take_slot(self) -> bool:
        """Wait for room for one more frame in flight (recorded); False when stopping."""
        while not self._stopping:
            if self._slots.acquire(timeout=_POLL):
                return True
        return False
