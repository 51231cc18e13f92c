"""`--dump-maps` as an output: the maps of a run saved to one .npz file when it closes.

Saved even when the run is stopped early (Ctrl-C), through a temporary file renamed into place.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from liveheat._common.files import atomic_write, check_writable
from liveheat.outputs.base import OutputBase


class MapsFile(OutputBase):
    """Collect each new map (one per inferred frame) and save them all at `close()`.

    The file holds, one row per map (maps of another size are resized to the first's):

    - `maps` (N, h, w) float32: the maps as drawn (after the target lock, the sign and the
      smoothing);
    - `raw` (N, h, w) float32: the same maps before smoothing;
    - `targets` (N,) int64: the class index each map explains, -1 where none;
    - `cuts` (K,) int64: the source indices of the frames where a shot starts (the first
      frame and each detected scene cut);
    - `frames` (N,) int64: the source index of the frame each map was made from;
    - `scales` (N, 2) float32: the (low, high) map values the colours spanned.

    `liveheat image IN --heat maps.npz --index I` draws row I.

    Args:
        path: an .npz file in an existing, writable folder (checked here, before the run).

    Raises:
        LiveheatError: the path cannot be written (checked up front), or saving failed.

    Examples:
        >>> import tempfile, pathlib
        >>> out = MapsFile(pathlib.Path(tempfile.mkdtemp()) / "maps.npz")
        >>> out.close(); np.load(out.path)["maps"].shape
        (0, 0, 0)
    """

    records = True  # every frame once: paused repeats would add nothing

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = os.fspath(check_writable(path, "maps", suffixes=(".npz",)))
        self._maps: list[np.ndarray] = []
        self._raw: list[np.ndarray] = []
        self._frames: list[int] = []
        self._targets: list[int] = []
        self._cuts: list[int] = []
        self._scales: list[tuple[float, float]] = []
        self._closed = False

    @property
    def count(self) -> int:
        """How many maps were collected."""
        return len(self._maps)

    def write(self, image: np.ndarray, frame: Any = None, annotation: Any = None) -> None:
        a = annotation
        if a is not None and a.fresh and a.raw is not None:
            self._maps.append(np.asarray(a.heat, np.float32))
            self._raw.append(np.asarray(a.raw, np.float32))
            self._frames.append(int(a.index))
            self._targets.append(-1 if a.target is None else int(a.target))
            self._scales.append(a.scale)
            if a.cut:
                self._cuts.append(int(a.index))

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        maps, raw = _stack(self._maps), _stack(self._raw)
        with atomic_write(self.path, "maps") as tmp:  # savez keeps a name ending in .npz
            np.savez(
                tmp,
                maps=maps,
                raw=raw,
                targets=np.asarray(self._targets, np.int64),
                cuts=np.asarray(self._cuts, np.int64),
                frames=np.asarray(self._frames, np.int64),
                scales=np.asarray(self._scales, np.float32).reshape(-1, 2),
            )


def _stack(maps: list[np.ndarray]) -> np.ndarray:
    """(N, h, w) float32 of the maps, resized to the first's size; (0, 0, 0) for none."""
    if not maps:
        return np.zeros((0, 0, 0), np.float32)
    import cv2

    h, w = maps[0].shape
    return np.stack([m if m.shape == (h, w) else cv2.resize(m, (w, h)) for m in maps]).astype(
        np.float32
    )
