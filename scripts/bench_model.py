"""Speed and int8 fidelity of the bundled model: one run, one table of medians and ratios.

Measures fp32 vs int8 inference at 224 and 320 (interleaved run by run, so both see the same
load), preprocessing of a 1280x720 clip frame, each heatmap method, and fp32 vs int8 top-1
agreement + CAM correlation on augmented crops of scikit-image photos. Checks the targets:
int8 <= 0.75x fp32, agreement >= 90 %, median CAM correlation >= 0.98,
preprocess + heatmap <= 20 % of fp32 inference. Exit status 1 when a target is missed.

Sessions run with spinning=False and BLAS held at one thread (`one_blas_thread`), as in the
pipeline (`Runner.run` and `Annotator.annotate` hold that scope; `--no-blas-scope` measures
without it, as a library call outside them would run). The default preprocessing is one bilinear
resize (the model card's); the antialiased variant is timed too but not checked.

Usage: python scripts/bench_model.py [--runs 150] [--threads 2] [--crops 25]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from liveheat._common.blas import one_blas_thread
from liveheat.model.backbone import Backbone
from liveheat.model.heatmaps import heatmap

ROOT = Path(__file__).resolve().parent.parent
CLIP = ROOT / "liveheat" / "data" / "bigbuckbunny.mp4"
SIZES = (224, 320)
METHODS = ("cam", "eigen", "mean", "max", "norm", "channel:0")
NATURAL = [
    "astronaut",
    "chelsea",
    "coffee",
    "rocket",
    "stereo_motorcycle",
    "camera",
    "clock",
    "coins",
]


def ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1e3


def clip_frame(index: int = 60) -> np.ndarray:
    cap = cv2.VideoCapture(str(CLIP))
    cap.set(cv2.CAP_PROP_POS_FRAMES, index)
    ok, frame = cap.read()
    cap.release()
    if not ok:
        sys.exit(f"cannot read frame {index} of {CLIP}")
    return frame


def skimage_bgr(name: str) -> np.ndarray:
    import skimage.data

    img = getattr(skimage.data, name)()
    img = np.asarray(img[0] if isinstance(img, tuple) else img)
    if img.ndim == 2:
        return cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    return np.ascontiguousarray(cv2.cvtColor(img[..., :3], cv2.COLOR_RGB2BGR))


def random_crop(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """35-100 % of the area, aspect 3/4-4/3, flipped half the time, brightness +-15 %."""
    h, w = img.shape[:2]
    area = rng.uniform(0.35, 1.0) * h * w
    aspect = np.exp(rng.uniform(np.log(3 / 4), np.log(4 / 3)))
    ch = int(min(h, round(np.sqrt(area / aspect))))
    cw = int(min(w, round(np.sqrt(area * aspect))))
    y, x = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
    crop = img[y : y + ch, x : x + cw]
    crop = crop[:, ::-1] if rng.random() < 0.5 else crop
    return cv2.convertScaleAbs(crop, alpha=rng.uniform(0.85, 1.15), beta=rng.uniform(-15, 15))


def round_robin(jobs: dict, runs: int) -> tuple[dict[str, float], dict[str, float]]:
    """(median ms, min ms) per job, running every job once per round in a rotating order."""
    names = list(jobs)
    for name in names:  # warm-up
        for _ in range(3):
            jobs[name]()
    samples: dict[str, list[float]] = {n: [] for n in names}
    for i in range(runs):
        for name in names[i % len(names) :] + names[: i % len(names)]:
            t = time.perf_counter()
            jobs[name]()
            samples[name].append(time.perf_counter() - t)
    return {n: ms(v) for n, v in samples.items()}, {n: min(v) * 1e3 for n, v in samples.items()}


def inference(bb: Backbone, frame: np.ndarray):
    blob, _ = bb.preprocess(frame)
    blob = blob.copy()
    name = bb.session.get_inputs()[0].name
    return lambda: bb.session.run(None, {name: blob})


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=150, help="timed rounds per size")
    ap.add_argument("--threads", type=int, default=2, help="onnxruntime intra-op threads")
    ap.add_argument("--crops", type=int, default=25, help="augmented crops per image")
    ap.add_argument("--no-blas-scope", action="store_true", help="measure outside one_blas_thread")
    args = ap.parse_args()
    if args.no_blas_scope:
        return run(args)
    with one_blas_thread():  # as a run holds it: see liveheat/_common/blas.py
        return run(args)


def run(args: argparse.Namespace) -> int:

    frame = clip_frame()
    rows: list[tuple[str, str]] = []
    checks: list[tuple[str, bool]] = []
    fp32_ms: dict[int, float] = {}

    for size in SIZES:
        # spinning off, as the pipeline runs it (spinning workers steal the core from the rest)
        fp = Backbone(threads=args.threads, input_size=size, spinning=False)
        q8 = Backbone("int8", threads=args.threads, input_size=size, spinning=False)
        aa = Backbone(threads=1, input_size=size, antialias=True)
        feats = fp(frame)
        jobs = {"fp32": inference(fp, frame), "int8": inference(q8, frame)}
        jobs["pre"] = lambda fp=fp: fp.preprocess(frame)
        jobs["pre_aa"] = lambda aa=aa: aa.preprocess(frame)
        jobs["call"] = lambda fp=fp: fp(frame)
        for method in METHODS:
            jobs[method] = lambda m=method, f=feats: heatmap(f, m)
        t, lo = round_robin(jobs, args.runs)  # each job once per round: all see the same load
        fp32_ms[size] = t["fp32"]
        ratio = t["int8"] / t["fp32"]
        rows += [
            (f"fp32 inference {size}x{size}", f"{t['fp32']:8.2f} ms  (min {lo['fp32']:.2f})"),
            (f"int8 inference {size}x{size}", f"{t['int8']:8.2f} ms  (min {lo['int8']:.2f})"),
            (f"int8 / fp32 at {size}", f"{ratio:8.2f} x"),
            (f"preprocess 1280x720 -> {size}x{size}", f"{t['pre']:8.3f} ms  (min {lo['pre']:.3f})"),
            ("  antialias=True", f"{t['pre_aa']:8.3f} ms  (min {lo['pre_aa']:.3f})"),
            (f"Backbone(frame) fp32 {size} (all in)", f"{t['call']:8.2f} ms"),
        ]
        checks.append((f"int8 <= 0.75x fp32 at {size} ({ratio:.2f}x)", ratio <= 0.75))
        grid = f"{feats.maps.shape[1]}x{feats.maps.shape[2]}"
        for method in METHODS:
            rows.append(
                (
                    f"heatmap {method} at {size} ({grid})",
                    f"{t[method]:8.3f} ms  (min {lo[method]:.3f})",
                )
            )
        worst = max(METHODS, key=lambda m: t[m])
        for method in sorted({"cam", worst}):
            share = (t["pre"] + t[method]) / t["fp32"]
            rows.append((f"(preprocess + {method}) / fp32 at {size}", f"{share:8.1%}"))
            checks.append(
                (f"preprocess + {method} <= 20% of fp32 at {size} ({share:.1%})", share <= 0.20)
            )

    # fidelity: fp32 vs int8 on augmented crops of natural photos
    fp, q8 = Backbone(threads=args.threads), Backbone("int8", threads=args.threads)
    rng = np.random.default_rng(2025)
    agree, corr = [], []
    for name in NATURAL:
        img = skimage_bgr(name)
        for _ in range(args.crops):
            crop = random_crop(img, rng)
            a, b = fp(crop), q8(crop)
            t = int(np.argmax(a.logits))
            agree.append(t == int(np.argmax(b.logits)))
            ca, cb = heatmap(a, "cam", t), heatmap(b, "cam", t)
            corr.append(float(np.corrcoef(ca.ravel(), cb.ravel())[0, 1]))
    rate, med = float(np.mean(agree)), float(np.median(corr))
    rows += [
        (f"int8 top-1 agreement ({len(agree)} crops)", f"{rate:8.1%}"),
        ("int8 CAM correlation median / min", f"{med:.4f} / {min(corr):.4f}"),
    ]
    checks += [
        (f"top-1 agreement >= 90% ({rate:.1%})", rate >= 0.90),
        (f"median CAM correlation >= 0.98 ({med:.4f})", med >= 0.98),
    ]

    import onnxruntime

    print(
        f"liveheat bench_model: onnxruntime {onnxruntime.__version__}, threads={args.threads}, "
        f"runs={args.runs}, {cv2.getNumberOfCPUs()} CPUs"
    )
    width = max(len(r[0]) for r in rows)
    print(f"{'measure':<{width}}  median (ratios and checks use medians)")
    for label, value in rows:
        print(f"{label:<{width}}  {value}")
    print()
    for label, ok in checks:
        print(f"{'PASS' if ok else 'FAIL'}  {label}")
    return 0 if all(ok for _, ok in checks) else 1


if __name__ == "__main__":
    raise SystemExit(main())
