"""Check `--device cuda` on a machine with an NVIDIA GPU (issue 13, point 2).

Usage (with onnxruntime-gpu installed in place of onnxruntime):
    python scripts/check_cuda.py [--frames 60]

The bundled model runs on the bundled clip's frames once on the CPU and once through
`liveheat.model.devices.providers_for("cuda")` (what `--device cuda` gives the Backbone):

- the session really runs on CUDAExecutionProvider (not the CPU fallback);
- the same top-1 class on every frame, and maps that agree (Pearson r >= 0.999 per frame);
- `liveheat run --device cuda` on the clip writes every frame and says nothing on stderr;
- inference ms per frame on each (median), and the ratio.

Exit 0 when all hold, 1 when one does not, 2 when this onnxruntime has no CUDA provider.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import liveheat  # noqa: E402
from liveheat.model.backbone import Backbone  # noqa: E402
from liveheat.model.devices import available, providers_for  # noqa: E402
from liveheat.model.heatmaps import heatmap  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=60)
    args = ap.parse_args()
    have = available()
    print(f"onnxruntime providers: {', '.join(have)}")
    if "CUDAExecutionProvider" not in have:
        print("no CUDAExecutionProvider here: install onnxruntime-gpu on a GPU machine")
        return 2
    with liveheat.open_source(liveheat.bundled_clip()) as src:
        frames = [f.image for _, f in zip(range(args.frames), src, strict=False)]
    cpu = Backbone(threads=4, providers=providers_for("cpu"))
    gpu = Backbone(providers=providers_for("cuda"))
    print(f"cuda session providers: {gpu.providers}")
    ok = gpu.providers[0] == "CUDAExecutionProvider"
    times = {"cpu": [], "cuda": []}
    worst_r, same_top = 1.0, 0
    for image in frames:
        out = {}
        for name, bb in (("cpu", cpu), ("cuda", gpu)):
            t0 = time.perf_counter()
            feats = bb(image)
            times[name].append((time.perf_counter() - t0) * 1000)
            out[name] = (feats.top(1)[0][0], heatmap(feats, "cam"))
        same_top += out["cpu"][0] == out["cuda"][0]
        r = float(np.corrcoef(out["cpu"][1].ravel(), out["cuda"][1].ravel())[0, 1])
        worst_r = min(worst_r, r)
    ok &= same_top == len(frames) and worst_r >= 0.999
    print(f"same top-1 class: {same_top}/{len(frames)} frames; worst map correlation {worst_r:.5f}")
    with tempfile.TemporaryDirectory() as tmp:
        r = subprocess.run(
            [sys.executable, "-m", "liveheat", "run", liveheat.bundled_clip(), "-o",
             f"{tmp}/cuda.mp4", "--no-show", "--device", "cuda"],
            capture_output=True, text=True,
        )  # fmt: skip
        print(f"liveheat run --device cuda: exit {r.returncode}; {r.stdout.strip()}")
        if r.stderr.strip():
            print(f"  stderr: {r.stderr.strip()}")
        ok &= r.returncode == 0 and not r.stderr.strip() and "132 out" in r.stdout
    c, g = (statistics.median(times[k][5:]) for k in ("cpu", "cuda"))
    print(f"inference ms/frame (median, after 5 warm-up): cpu {c:.2f}, cuda {g:.2f}, x{c / g:.1f}")
    print("CUDA check: " + ("passed" if ok else "FAILED"))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
