"""Video files for tests, made from the bundled clip: fast-start (moov first) MP4s, truncated
copies, image sequences and re-encoded clips at other frame rates.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

import cv2
import numpy as np

CLIP = Path(__file__).resolve().parents[2] / "liveheat" / "data" / "bigbuckbunny.mp4"
CLIP_FRAMES = 132
CLIP_FPS = 25.0
CLIP_SIZE = (1280, 720)

_CONTAINERS = {b"moov", b"trak", b"mdia", b"minf", b"stbl", b"edts", b"dinf"}


def _atoms(data: bytes, start: int, end: int):
    """(type, offset, header size, total size) of each atom in data[start:end]."""
    i = start
    while i + 8 <= end:
        size, kind = struct.unpack(">I4s", data[i : i + 8])
        header = 8
        if size == 1:
            size = struct.unpack(">Q", data[i + 8 : i + 16])[0]
            header = 16
        elif size == 0:
            size = end - i
        if size < header or i + size > end:
            raise ValueError(f"broken MP4 atom {kind!r} at {i}")
        yield kind, i, header, size
        i += size


def _shift_chunk_offsets(moov: bytearray, start: int, end: int, delta: int) -> None:
    for kind, off, header, size in list(_atoms(moov, start, end)):
        body = off + header
        if kind in _CONTAINERS:
            _shift_chunk_offsets(moov, body, off + size, delta)
        elif kind in (b"stco", b"co64"):  # chunk offsets, 32-bit or 64-bit
            width, fmt = (4, ">I") if kind == b"stco" else (8, ">Q")
            (count,) = struct.unpack(">I", moov[body + 4 : body + 8])
            for k in range(count):
                p = body + 8 + width * k
                (v,) = struct.unpack(fmt, moov[p : p + width])
                moov[p : p + width] = struct.pack(fmt, v + delta)


def faststart(src: str | os.PathLike, dst: str | os.PathLike) -> Path:
    """Copy an MP4 with its index (moov) moved before the media data, like `qt-faststart`, so
    that a copy cut short still opens and plays up to the cut."""
    data = Path(src).read_bytes()
    top = list(_atoms(data, 0, len(data)))
    moovs = [a for a in top if a[0] == b"moov"]
    if len(moovs) != 1:
        raise ValueError(f"{src}: expected one moov atom, found {len(moovs)}")
    _, moff, _, msize = moovs[0]
    first_media = min(off for kind, off, _, _ in top if kind == b"mdat")
    if moff < first_media:
        Path(dst).write_bytes(data)
        return Path(dst)
    moov = bytearray(data[moff : moff + msize])
    _shift_chunk_offsets(moov, 0, msize, msize)
    others = [data[off : off + size] for kind, off, _, size in top if kind != b"moov"]
    kinds = [kind for kind, *_ in top if kind != b"moov"]
    head = [blob for blob, kind in zip(others, kinds, strict=True) if kind == b"ftyp"]
    body = [blob for blob, kind in zip(others, kinds, strict=True) if kind != b"ftyp"]
    Path(dst).write_bytes(b"".join(head) + bytes(moov) + b"".join(body))
    return Path(dst)


def truncated_copy(src: str | os.PathLike, dst: str | os.PathLike, keep: float) -> Path:
    """Copy the first `keep` fraction of the bytes of `src` (a download cut short)."""
    data = Path(src).read_bytes()
    Path(dst).write_bytes(data[: int(len(data) * keep)])
    return Path(dst)


def read_frames(path: str | os.PathLike, limit: int | None = None) -> list[np.ndarray]:
    """Every frame of a video file, decoded with OpenCV."""
    cap = cv2.VideoCapture(os.fspath(path))
    frames = []
    try:
        while limit is None or len(frames) < limit:
            ok, image = cap.read()
            if not ok:
                break
            frames.append(image)
    finally:
        cap.release()
    return frames


def write_video(
    path: str | os.PathLike, frames: list[np.ndarray], fps: float, fourcc: str = "mp4v"
) -> Path:
    """Encode frames with cv2.VideoWriter at a (possibly fractional) fps."""
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(os.fspath(path), cv2.VideoWriter_fourcc(*fourcc), fps, (w, h))
    assert writer.isOpened(), f"cannot write {path} with {fourcc}"
    for f in frames:
        writer.write(f)
    writer.release()
    return Path(path)


def write_image_sequence(
    folder: str | os.PathLike, frames: list[np.ndarray], ext: str = ".png", pattern: str = "{}"
) -> list[Path]:
    """Write frames as numbered images (`pattern` formats the index: '{}' gives 0.png, 1.png...)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, f in enumerate(frames):
        p = folder / (pattern.format(i) + ext)
        assert cv2.imwrite(str(p), f)
        paths.append(p)
    return paths


def read_video(path) -> tuple[int, float, tuple[int, int], np.ndarray | None]:
    """(frames readable, fps, (W, H), first frame)."""
    cap = cv2.VideoCapture(str(path))
    assert cap.isOpened(), f"{path} does not open"
    fps = cap.get(cv2.CAP_PROP_FPS)
    size = (int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)))
    n, first = 0, None
    while True:
        ok, image = cap.read()
        if not ok:
            break
        first = image if first is None else first
        n += 1
    cap.release()
    return n, fps, size, first
