"""Benchmark `liveheat batch` against a shell loop of `liveheat run`, and on a local Ray.

Usage: python scripts/bench_batch.py [--clips 8] [--frames 50] [--repeats 2] [--no-ray]

Eight short clips (cut from the bundled 720p clip, 640x360, H.264) are annotated with the
default settings, in one run, the three ways taking turns each round:

- loop:  ``for f in clips/*.mp4; do liveheat run "$f" -o out/... --no-show; done``
- batch: ``liveheat batch clips -o out`` (the local pool of worker processes)
- ray:   ``liveheat batch clips -o out --ray`` (starts a local Ray; its start-up time, which
  the summary reports, is shown apart and left out of its rate)

Prints wall seconds (median and range over --repeats), files/s, frames/s and each row's speed
against the loop's. Target (issue 12) on a 2-core machine: batch >= 1.3x the loop. Exit
status 1 when it is missed.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import av
import cv2

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from liveheat._common.files import bundled_clip  # noqa: E402
from liveheat._common.system import usable_cores  # noqa: E402

LIVEHEAT = [sys.executable, "-m", "liveheat"]


def make_clips(folder: Path, n: int, frames: int) -> None:
    """`n` clips of `frames` frames each, from different places in the bundled clip."""
    with av.open(bundled_clip()) as f:
        source = [fr.to_ndarray(format="bgr24") for fr in f.decode(video=0)]
    for i in range(n):
        start = (i * 13) % max(1, len(source) - frames)
        with av.open(str(folder / f"clip{i}.mp4"), "w") as out:
            s = out.add_stream("libx264", rate=25, options={"crf": "23", "preset": "veryfast"})
            s.width, s.height, s.pix_fmt = 640, 360, "yuv420p"
            for k in range(frames):
                image = cv2.resize(source[(start + k) % len(source)], (640, 360))
                vf = av.VideoFrame.from_ndarray(image, format="bgr24")
                vf.pts = k
                out.mux(s.encode(vf))
            out.mux(s.encode(None))


def timed(cmd: list[str] | str, *, shell: bool = False) -> tuple[float, str]:
    t0 = time.perf_counter()
    r = subprocess.run(cmd, shell=shell, capture_output=True, text=True)
    took = time.perf_counter() - t0
    if r.returncode != 0:
        raise SystemExit(f"bench_batch: {cmd!r} failed ({r.returncode}): {r.stderr.strip()}")
    return took, r.stdout


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=8)
    ap.add_argument("--frames", type=int, default=50, help="frames per clip")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--no-ray", action="store_true", help="leave out the Ray row")
    args = ap.parse_args()
    try:
        import ray  # noqa: F401
    except ImportError:
        args.no_ray = True
    total_frames = args.clips * args.frames
    modes = ["loop", "batch"] + ([] if args.no_ray else ["ray"])
    times: dict[str, list[float]] = {m: [] for m in modes}
    ray_start: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        clips = Path(tmp) / "clips"
        clips.mkdir()
        make_clips(clips, args.clips, args.frames)
        run = " ".join(LIVEHEAT + ["run"])
        for r in range(args.repeats):
            for mode in modes:
                out = Path(tmp) / f"out-{mode}"
                shutil.rmtree(out, ignore_errors=True)
                out.mkdir()
                if mode == "loop":
                    loop = (
                        f'for f in "{clips}"/*.mp4; do {run} "$f" -o "{out}/$(basename "$f")" '
                        "--no-show > /dev/null || exit 1; done"
                    )
                    took, _ = timed(["bash", "-c", loop])
                else:
                    extra = ["--ray"] if mode == "ray" else []
                    took, stdout = timed(LIVEHEAT + ["batch", str(clips), "-o", str(out), *extra])
                    if mode == "ray":
                        m = re.search(r"Ray start ([\d.]+) s", stdout)
                        ray_start.append(float(m.group(1)) if m else 0.0)
                done = sorted(p.name for p in out.glob("*.mp4"))
                assert len(done) == args.clips, (mode, done)
                times[mode].append(took)
                print(f"  round {r + 1} {mode}: {took:.1f} s", file=sys.stderr)

    print(
        f"{args.clips} clips x {args.frames} frames (640x360), default settings, "
        f"{usable_cores()} cores, load {os.getloadavg()[0]:.1f}; medians of {args.repeats}\n"
    )
    head = (
        f"{'mode':<30} {'seconds':>8} {'(range)':>13} {'files/s':>8} {'frames/s':>9} {'x loop':>7}"
    )
    print(head + "\n" + "-" * len(head))
    base = statistics.median(times["loop"])
    rows = []
    for mode in modes:
        t = times[mode]
        med = statistics.median(t)
        rows.append((mode, med, min(t), max(t)))
    if not args.no_ray:
        start = statistics.median(ray_start)
        net = [t - s for t, s in zip(times["ray"], ray_start, strict=True)]
        rows.append((f"ray without its start ({start:.1f} s)", statistics.median(net),
                     min(net), max(net)))  # fmt: skip
    labels = {"loop": "loop of `liveheat run`", "batch": "batch (local pool)", "ray": "batch --ray"}
    for mode, med, lo, hi in rows:
        span = f"({lo:.1f}-{hi:.1f})"
        print(
            f"{labels.get(mode, mode):<30} {med:>8.1f} {span:>13} {args.clips / med:>8.2f} "
            f"{total_frames / med:>9.1f} {base / med:>7.2f}"
        )
    ratio = base / statistics.median(times["batch"])
    ok = ratio >= 1.3
    print(f"\ntarget: batch >= 1.30x the loop ({ratio:.2f}x): " + ("met" if ok else "NOT met"))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
