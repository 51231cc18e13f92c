"""Benchmark liveheat.overlay against the addWeighted floor and the float path users write.

Usage: python scripts/bench_overlay.py [--repeats 60]
Prints median milliseconds per call, one row per frame size and map size, and ratios. Targets
at 1080p: color <= 2.0x the floor and >= 10x faster than the float path; transparent <= 3x floor.
Exit status 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import time
from functools import partial

import cv2
import numpy as np

import liveheat
from liveheat.settings.fields import MODES

SIZES = [(480, 640), (720, 1280), (1080, 1920)]
MAPS = [(7, 7), (32, 96)]


def interleaved_ms(jobs: dict, repeats: int) -> dict[str, float]:
    """Median ms per job, the jobs taking turns call by call in a shuffled order, so that every
    job (and the floor it is compared with) sees the same machine: drift cancels in the ratios."""
    for fn in jobs.values():  # warm-up: caches, thread pool, page faults
        fn()
    times: dict[str, list[float]] = {name: [] for name in jobs}
    names = list(jobs)
    order = np.random.default_rng(0)
    for _ in range(repeats):
        # a new random order each round: no job always runs right after the same one
        for name in order.permutation(names):
            t0 = time.perf_counter()
            jobs[name]()
            times[name].append(time.perf_counter() - t0)
    return {name: float(np.median(v) * 1e3) for name, v in times.items()}


def float_path(frame: np.ndarray, heat: np.ndarray) -> np.ndarray:
    """What a typical user writes (pytorch-grad-cam's show_cam_on_image, on a BGR frame)."""
    img = frame / 255.0  # float64
    mask = cv2.resize(heat, (frame.shape[1], frame.shape[0]))
    mask = (mask - mask.min()) / (mask.max() - mask.min())
    colored = cv2.applyColorMap(np.uint8(255 * mask), cv2.COLORMAP_JET)
    colored = np.float32(colored) / 255
    cam = 0.5 * colored + 0.5 * img
    return np.uint8(255 * cam)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=60)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    print(
        f"OpenCV {cv2.__version__}, threads {cv2.getNumThreads()}; median ms of "
        f"{args.repeats} calls\n"
    )
    head = (
        f"{'frame':>10} {'map':>6} "
        + " ".join(f"{m:>11}" for m in MODES)
        + f" {'floor':>7} {'float':>7} | {'color/fl':>8} {'transp/fl':>9} {'float/col':>9}"
    )
    print(head)
    print("-" * len(head))
    verdicts = []
    for h, w in SIZES:
        frame = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        other = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        for mh, mw in MAPS:
            heat = rng.random((mh, mw)).astype(np.float32)
            jobs = {m: partial(liveheat.overlay, frame, heat, mode=m) for m in MODES}
            jobs["floor"] = partial(cv2.addWeighted, frame, 0.5, other, 0.5, 0.0)
            t = interleaved_ms(jobs, args.repeats)
            floor = t["floor"]
            flt = interleaved_ms(
                {"float": partial(float_path, frame, heat)}, max(5, args.repeats // 4)
            )["float"]
            rc, rt, rf = t["color"] / floor, t["transparent"] / floor, flt / t["color"]
            print(
                f"{w:>5}x{h:<4} {mh:>2}x{mw:<3} "
                + " ".join(f"{t[m]:>11.2f}" for m in MODES)
                + f" {floor:>7.2f} {flt:>7.2f} | {rc:>8.2f} {rt:>9.2f} {rf:>9.1f}"
            )
            if h == 1080:
                verdicts.append((f"{mh}x{mw}", rc, rt, rf))
    print(
        "\ntargets at 1920x1080: color <= 2.0x floor, transparent <= 3.0x floor, "
        "float path >= 10x slower than color"
    )
    met = True
    for name, rc, rt, rf in verdicts:
        ok = rc <= 2.0 and rt <= 3.0 and rf >= 10
        met = met and ok
        print(
            f"  map {name:>6}: color {rc:.2f}x, transparent {rt:.2f}x, float path {rf:.1f}x "
            f"-> {'MET' if ok else 'MISSED'}"
        )
    return 0 if met else 1


if __name__ == "__main__":
    raise SystemExit(main())
