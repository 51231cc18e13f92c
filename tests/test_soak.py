"""Soak: 5,000 frames of the looped bundled clip through the full runner with the stream server.

A client watches the whole time and /stats is polled; memory must plateau and no thread may leak.
"""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
import threading
import urllib.request
from pathlib import Path

import cv2
import numpy as np

import liveheat
from liveheat.outputs.stream.server import StreamServer
from liveheat.pipeline.runner import Runner
from liveheat.settings.config import build_settings
from liveheat.sources.source import open_source

CLIP = Path(liveheat.__file__).parent / "data" / "bigbuckbunny.mp4"
FRAMES = 5000
WARMUP = 500  # frames before the first memory reading (buffers, caches, arenas settle)


def _status(field: str) -> int:
    """A number from /proc/self/status (VmRSS in kB, Threads)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


class Viewer(threading.Thread):
    """Reads the MJPEG stream until the server closes it; counts and decodes frames."""

    def __init__(self, port: int):
        super().__init__(daemon=True)
        self.port = port
        self.frames = 0
        self.means: list[float] = []

    def run(self) -> None:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/stream", timeout=30) as r:
            try:
                while line := r.readline():
                    if line.lower().startswith(b"content-length:"):
                        n = int(line.split(b":")[1])
                        r.readline()
                        image = cv2.imdecode(np.frombuffer(r.read(n), np.uint8), cv2.IMREAD_COLOR)
                        self.frames += 1
                        if self.frames % 50 == 0:
                            self.means.append(float(image.mean()))
            except OSError:  # the server shut the connection at close()
                pass


def _collect(runner: Runner, result: list) -> None:
    result.append(runner.run())


def _run(frames: int, settings, poll) -> tuple[dict, Viewer, StreamServer]:
    with open_source(CLIP, loop=True) as source:
        server = StreamServer(settings=settings)
        viewer = None
        try:
            runner = Runner(source, settings, outputs=[server], max_frames=frames, progress=False)
            server.stats = runner.stats.snapshot
            viewer = Viewer(server.port)
            viewer.start()
            result: list = []
            worker = threading.Thread(target=_collect, args=(runner, result))
            worker.start()
            while worker.is_alive():
                poll(runner, server)
                worker.join(0.5)
            assert result, "the run raised"
            stats = result[0].snapshot()
        finally:
            server.close()
            if viewer is not None:
                viewer.join(10)
        runner = None  # drop the backbone (its session and thread pool) before counting threads
    gc.collect()
    return stats, viewer, server


def test_soak_5000_frames_with_a_viewer_no_memory_growth_no_thread_leak():
    # in a fresh process of its own: what earlier tests left in this one (hundreds of MB of
    # malloc arenas, glibc's raised mmap threshold) would be counted against the soak
    if os.environ.get("LIVEHEAT_SOAK_CHILD") != "1":
        name = "test_soak_5000_frames_with_a_viewer_no_memory_growth_no_thread_leak"
        test = f"{Path(__file__).resolve()}::{name}"
        r = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider", test],
            env={**os.environ, "LIVEHEAT_SOAK_CHILD": "1"},
            capture_output=True,
            text=True,
            timeout=900,
        )
        print(next((ln for ln in r.stdout.splitlines() if ln.startswith("soak:")), ""))
        assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
        return
    settings = build_settings({"threads": 1, "show": False}, preset="edge")
    # a short run first: libraries start their worker pools and caches once per process
    _run(60, settings, lambda r, s: None)
    threads_py, threads_os = threading.active_count(), _status("Threads")

    rss: dict[str, int] = {}
    stats_seen: list[dict] = []

    def poll(runner, server) -> None:
        with urllib.request.urlopen(server.url + "stats", timeout=10) as r:
            stats_seen.append(json.loads(r.read()))
        if "warm" not in rss and runner.stats.frames_out >= WARMUP:
            rss["warm"] = _status("VmRSS")
        rss["last"] = _status("VmRSS")  # the final poll comes within 0.5 s of the end
        rss["peak"] = max(rss.get("peak", 0), rss["last"])

    stats, viewer, server = _run(FRAMES, settings, poll)
    rss["closed"] = _status("VmRSS")

    assert stats["frames_in"] == stats["frames_out"] == FRAMES and stats["error"] is None
    assert stats["frames_inferred"] == FRAMES // 2  # the edge preset infers every 2nd frame
    growth_mb = (rss["last"] - rss["warm"]) / 1024
    print(f"\nsoak: RSS after {WARMUP} frames {rss['warm'] / 1024:.0f} MB, at the end "
          f"{rss['last'] / 1024:.0f} MB (growth {growth_mb:+.1f} MB), peak "
          f"{rss['peak'] / 1024:.0f} MB, after close {rss['closed'] / 1024:.0f} MB; "
          f"viewer got {viewer.frames} frames, {len(stats_seen)} /stats polls")  # fmt: skip
    assert growth_mb < 30
    assert rss["closed"] - rss["warm"] < 30 * 1024
    assert (rss["peak"] - rss["warm"]) / 1024 < 60
    # the viewer watched the whole run and saw the picture change
    assert viewer.frames >= FRAMES // 4 and not viewer.is_alive()
    assert len(set(np.round(viewer.means, 1))) > 5
    assert stats_seen and all(s["clients"] in (0, 1) for s in stats_seen)
    assert max(s["frames_out"] for s in stats_seen) > WARMUP
    assert server.clients == 0 and server.clients_dropped == 0
    # no thread left behind: Python threads and the OS threads of the process
    assert threading.active_count() == threads_py
    assert _status("Threads") == threads_os
