"""The recordings a killed run left behind: a VideoSink's temporary files, kept or removed.

A VideoSink writes `.NAME.<pid>.tmp.EXT` beside its target (segments:
`.NAME-<start>.<pid>.tmp.EXT`) and renames it into place when it closes. A process killed
mid-recording leaves that file: `recover_temporaries`, run by the next VideoSink on the same
path, keeps a playable one as `NAME.partial-<start time>.EXT` and removes the rest.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import os
import re
import struct
import sys
import time
from collections.abc import Callable
from pathlib import Path

_TEMP = re.compile(r"^\.(?P<stem>.+)\.(?P<pid>\d+)\.tmp(?P<ext>\.[A-Za-z0-9]+)$")
#: how a start time is written in a file name (segments, partial recordings)
STAMP = "%Y%m%d-%H%M%S"


def say_stderr(text: str) -> None:
    """A one-line note on stderr, prefixed "liveheat: " (VideoSink's default `notice`)."""
    print(f"liveheat: {text}", file=sys.stderr, flush=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # someone else's process, or we cannot tell: leave its file alone
    return True


def _trim_fragments(path: Path) -> None:
    """Cut an MP4 killed mid-write after its last whole box (a half-written fragment header
    would keep the file from opening); leave it alone when its boxes make no sense."""
    size = path.stat().st_size
    ends, last_kind, i = [], b"", 0
    with open(path, "rb") as f:
        while i + 8 <= size:
            f.seek(i)
            head = f.read(16)
            n, kind = struct.unpack(">I4s", head[:8])
            if n == 1 and len(head) >= 16:
                n = struct.unpack(">Q", head[8:16])[0]
            if n < 8:
                return
            if i + n > size:
                break
            i += n
            ends.append((i, kind))
    if not ends:
        return
    cut, last_kind = ends[-1]
    if last_kind == b"moof" and len(ends) > 1:  # a fragment header without its media
        cut = ends[-2][0]
    if cut < size:
        os.truncate(path, cut)


def _playable(path: Path) -> tuple[int, float, str | None]:
    """(video frames, seconds, creation_time) of a file cut short; (0, 0, None) when no
    frame of it decodes."""
    import av

    try:
        with av.open(os.fspath(path)) as f:
            if not f.streams.video:
                return 0, 0.0, None
            vs = f.streams.video[0]
            created = f.metadata.get("creation_time")
            n, end, decoded = 0, 0.0, False
            try:
                for p in f.demux(vs):
                    if p.pts is None or not p.size:
                        continue
                    if not decoded:
                        decoded = bool(p.decode())
                    n += 1
                    end = max(end, float((p.pts + (p.duration or 0)) * vs.time_base))
            except av.FFmpegError:
                pass  # the cut: what came before it plays
            if not decoded and n:
                # the first packets may need the next ones (a decoder delay): try frames
                f.seek(0)
                with contextlib.suppress(av.FFmpegError, StopIteration):
                    decoded = next(f.decode(vs)) is not None
            return (n if decoded else 0), end, created
    except (av.FFmpegError, OSError):
        return 0, 0.0, None


def recover_temporaries(
    path: str | os.PathLike, say: Callable[[str], None] = say_stderr
) -> list[Path]:
    """Deal with the temporary files a VideoSink of a process that died left beside `path`
    (`.NAME.<pid>.tmp.EXT`, and its segments' `.NAME-<start>.<pid>.tmp.EXT`): a playable one
    (a live recording: fragmented MP4 or Matroska) is kept as `NAME.partial-<start time>.EXT`,
    an unplayable one removed; one line each. Files of a process still running are left alone.

    Returns:
        The partial recordings kept.
    """
    target = Path(path)
    folder = target.parent if str(target.parent) else Path(".")
    base = target.name[: len(target.name) - len(target.suffix)]
    kept: list[Path] = []
    try:
        entries = sorted(folder.iterdir())
    except OSError:
        return kept
    for entry in entries:
        m = _TEMP.match(entry.name)
        if m is None or m["ext"].lower() != target.suffix.lower():
            continue
        stem, pid = m["stem"], int(m["pid"])
        seg = None
        if stem != base:
            rest = stem[len(base) + 1 :] if stem.startswith(base + "-") else ""
            if not re.fullmatch(r"\d{8}-\d{6}(-\d+)?", rest):
                continue
            seg = rest[:15]
        if pid == os.getpid() or _alive(pid) or not entry.is_file():
            continue
        try:
            if target.suffix.lower() in (".mp4", ".m4v", ".mov"):
                _trim_fragments(entry)
            frames, seconds, created = _playable(entry)
            if frames == 0:
                entry.unlink()
                say(f"removed {entry} left by a run that ended (pid {pid}): it does not play")
                continue
            stamp = seg or _stamp_of(created, entry, seconds)
            dest = target.with_name(f"{base}.partial-{stamp}{target.suffix}")
            k = 2
            while dest.exists():
                dest = target.with_name(f"{base}.partial-{stamp}-{k}{target.suffix}")
                k += 1
            os.replace(entry, dest)
        except OSError as e:
            say(f"cannot recover {entry} left by a run that ended (pid {pid}): {e.strerror or e}")
            continue
        kept.append(dest)
        say(
            f"kept {dest}: {frames} frames ({seconds:.1f} s) of a recording that ended without "
            f"finishing (pid {pid})"
        )
    return kept


def _stamp_of(created: str | None, entry: Path, seconds: float) -> str:
    """The local start time of a recording, as YYYYmmdd-HHMMSS."""
    if created:
        with contextlib.suppress(ValueError):
            t = _dt.datetime.fromisoformat(created.replace("Z", "+00:00"))
            if t.tzinfo is None:
                t = t.replace(tzinfo=_dt.timezone.utc)
            return time.strftime(STAMP, time.localtime(t.timestamp()))
    return time.strftime(STAMP, time.localtime(entry.stat().st_mtime - seconds))
