"""How still do the maps hold on video? Today's per-frame top-1 raw maps against the defaults.

For each clip and method, in one run: the median and 1st-percentile frame-to-frame correlation
of the drawn maps within shots, target changes per 100 frames, the lag after a cut (frames until
the drawn map correlates >= 0.9 with that frame's raw map) and the lag behind motion (frames the
drawn map's heat centre trails the raw map's, on an object sliding across a still background).

Clips: the bundled Big Buck Bunny excerpt; four shots of real photographs with slow camera moves
and hard cuts; a cat's head sliding over gravel (tests/helpers/clips.py).

    python scripts/bench_stability.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import liveheat  # noqa: E402
from liveheat.model.backbone import Backbone  # noqa: E402
from liveheat.model.stability import Stabilizer, correlation  # noqa: E402
from tests.helpers.clips import moving_object_clip, shots_clip  # noqa: E402

#: (label, target, smoothing, smoother, follow the sign); the first is today's behaviour,
#: the one marked * is the default
CONFIGS = [
    ("today: top-1, raw", "top1", 0.0, "ema", False),
    ("lock + sign, no smoothing", "auto", 0.0, "ema", True),
    ("lock + sign + EMA 0.6", "auto", 0.6, "ema", True),
    ("lock + sign + EMA 0.8", "auto", 0.8, "ema", True),
    ("lock + sign + euro 0.6", "auto", 0.6, "euro", True),
    ("* lock + sign + euro 0.75", "auto", 0.75, "euro", True),
    ("lock + sign + euro 0.85", "auto", 0.85, "euro", True),
]


def bunny() -> list[np.ndarray]:
    with liveheat.open_source(liveheat.bundled_clip()) as src:
        return [f.image for f in src]


def run(feats, method, target, smooth, smoother, follow):
    stab = Stabilizer()
    return [
        stab(f, method, target, smooth=smooth, smoother=smoother, follow_sign=follow) for f in feats
    ]


def centre_x(heat: np.ndarray) -> float:
    w = np.clip(heat - np.median(heat), 0, None)
    if w.sum() <= 0:
        return float(heat.shape[1] / 2)
    return float((w.sum(axis=0) * np.arange(heat.shape[1])).sum() / w.sum())


def measure(out, cuts_true):
    cut_set = set(cuts_true)
    pairs = enumerate(zip(out, out[1:], strict=False), 1)
    corr = [correlation(a.heat, b.heat) for i, (a, b) in pairs if i not in cut_set]
    corr = [c for c in corr if c is not None]
    targets = [o.target for o in out]
    changes = sum(1 for i in range(1, len(out))
                  if i not in cut_set and targets[i] != targets[i - 1])  # fmt: skip
    lags = []
    for c in cuts_true[1:]:
        ok = [
            k
            for k in range(10)
            if c + k < len(out) and (correlation(out[c + k].heat, out[c + k].raw) or 0) >= 0.9
        ]
        lag = ok[0] if ok else 10
        lags.append(lag)
    return {
        "median": float(np.median(corr)) if corr else float("nan"),
        "p1": float(np.percentile(corr, 1)) if corr else float("nan"),
        "changes": 100.0 * changes / max(1, len(out) - 1),
        "cut_lag": max(lags) if lags else None,
    }


def motion_lag(out) -> int:
    raw = np.array([centre_x(o.raw) for o in out])
    drawn = np.array([centre_x(o.heat) for o in out])
    errs = [np.mean(np.abs(drawn[k + 4 :] - raw[4 : len(raw) - k])) for k in range(0, 6)]
    return int(np.argmin(errs))


def main() -> int:
    bb = Backbone(spinning=False)
    shots, cuts = shots_clip()
    moving, _ = moving_object_clip()
    clips = [
        ("bunny (132)", [bb(f) for f in bunny()], [0]),
        ("photo shots (120)", [bb(f) for f in shots], cuts),
    ]
    moving_feats = [bb(f) for f in moving]
    print(f"liveheat {liveheat.__version__}: map stability, fp32 at 224, one run")
    head = f"{'clip':18} {'method':6} {'config':27} {'median':>7} {'p1':>7} {'tgt/100':>8} " \
           f"{'cut lag':>7} {'motion lag':>10}"  # fmt: skip
    print(head)
    print("-" * len(head))
    for method in ("cam", "eigen"):
        for label, *config in CONFIGS:
            mlag = motion_lag(run(moving_feats, method, *config))
            for name, feats, cut_list in clips:
                m = measure(run(feats, method, *config), cut_list)
                cl = "-" if m["cut_lag"] is None else str(m["cut_lag"])
                print(f"{name:18} {method:6} {label:27} {m['median']:7.3f} {m['p1']:7.3f} "
                      f"{m['changes']:8.1f} {cl:>7} {mlag:>10}")  # fmt: skip
        print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
