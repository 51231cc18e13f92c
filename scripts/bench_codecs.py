"""Measure the video encoders a VideoSink may use on the bundled clip drawn with a heatmap.

Usage: python scripts/bench_codecs.py [--frames 132] [--repeats 2] [--only x264]

The bundled 720p clip is annotated once (liveheat's Annotator, default settings, no HUD) and the
drawn frames are kept in memory; then every candidate encodes them, alternately over
`--repeats` rounds, and the table says for each: the file size (kB per frame and x the mp4v
baseline), PSNR of the decoded file against the drawn frames (dB, over all pixels of all
frames), and encode cost per frame: wall ms (what one output thread waits) and CPU ms (all of
the encoder's threads; on 2 cores the pipeline's budget for everything is 2000 / fps ms).
The baseline is OpenCV's mp4v (what liveheat wrote before PyAV). Encode times include the
BGR -> YUV conversion. Medians over the rounds.

Targets (issue 10, point 7): the default H.264 file <= 0.35x the mp4v file at >= its PSNR,
cheap enough that the whole pipeline keeps >= 45 fps on 720p on 2 cores.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from liveheat._common.files import bundled_clip  # noqa: E402
from liveheat.outputs.codecs import choose  # noqa: E402
from liveheat.outputs.video import VideoSink  # noqa: E402
from liveheat.pipeline.annotator import Annotator  # noqa: E402

FPS = 25


def drawn_frames(n: int) -> list[np.ndarray]:
    """The first `n` frames of the bundled clip, drawn with a heatmap (no HUD)."""
    cap = cv2.VideoCapture(bundled_clip())
    ann = Annotator(hud=False)  # the default settings: the frames people get
    frames = []
    while len(frames) < n:
        ok, image = cap.read()
        if not ok:
            break
        frames.append(np.ascontiguousarray(ann.annotate(image).image))
    cap.release()
    return frames


# --------------------------------------------------------------------------------- candidates
def pyav_encoder(
    container: str, codec: str, pix_fmt: str, options: dict[str, str], *, convert: str = "cv2"
) -> Callable[[list[np.ndarray], str], None]:
    """Encode with PyAV. `convert`: "cv2" gives the encoder I420 planes made by
    cv2.cvtColor (what VideoSink does for yuv420p at even sizes), "sws" gives it BGR frames
    that FFmpeg's swscale converts (its default chroma subsampling loses ~4 dB here)."""

    def encode(frames: list[np.ndarray], path: str) -> None:
        h, w = frames[0].shape[:2]
        with av.open(path, "w", format=container) as out:
            s = out.add_stream(codec, rate=FPS, options=dict(options))
            s.width, s.height, s.pix_fmt = w, h, pix_fmt
            s.time_base = Fraction(1, FPS)
            s.codec_context.thread_type = "AUTO"
            for i, image in enumerate(frames):
                if convert == "cv2":
                    planes = cv2.cvtColor(image, cv2.COLOR_BGR2YUV_I420)
                    f = av.VideoFrame.from_ndarray(planes, format="yuv420p")
                else:
                    f = av.VideoFrame.from_ndarray(image, format="bgr24")
                f.pts = i
                out.mux(s.encode(f))
            out.mux(s.encode(None))

    return encode


def opencv_mp4v(frames: list[np.ndarray], path: str) -> None:
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"mp4v"), FPS, (w, h))
    for image in frames:
        writer.write(image)
    writer.release()


def liveheat_sink(ext: str) -> Callable[[list[np.ndarray], str], None]:
    """What liveheat writes by default for `ext`: VideoSink itself, every step included."""

    def encode(frames: list[np.ndarray], path: str) -> None:
        with VideoSink(path, fps=FPS, audio=None) as sink:
            for image in frames:
                sink.write(image)

    return encode


def candidates(only: str | None) -> list[tuple[str, str, Callable]]:
    rows: list[tuple[str, str, Callable]] = [("mp4v (OpenCV)", ".mp4", opencv_mp4v)]
    for ext in (".mp4", ".webm", ".avi"):
        label = f"VideoSink {ext}: {choose('x' + ext).describe()}"
        rows.append((label, ext, liveheat_sink(ext)))

    def x264(label: str, sws: bool = False, **opts: str) -> None:
        enc = pyav_encoder("mp4", "libx264", "yuv420p", opts, convert="sws" if sws else "cv2")
        rows.append((label, ".mp4", enc))

    x264("x264 ultrafast crf 23 (swscale)", sws=True, preset="ultrafast", crf="23")
    x264("x264 superfast crf 23 (swscale)", sws=True, preset="superfast", crf="23")
    for preset, crfs in (
        ("ultrafast", (18, 21, 23, 26)),
        ("superfast", (21, 23, 26)),
        ("veryfast", (21, 23, 26)),
    ):
        for crf in crfs:
            x264(f"x264 {preset} crf {crf}", preset=preset, crf=str(crf))
    # tuned: chroma given more bits (a heatmap is colour), PSNR tuning (no AQ), macroblock tree
    x264p = "x264-params"
    x264(
        "x264 superfast crf 23 chroma-qp -3",
        preset="superfast",
        crf="23",
        **{x264p: "chroma-qp-offset=-3"},
    )
    x264(
        "x264 superfast crf 22 chroma-qp -3",
        preset="superfast",
        crf="22",
        **{x264p: "chroma-qp-offset=-3"},
    )
    x264(
        "x264 superfast crf 23 psnr chroma-qp -3",
        preset="superfast",
        crf="23",
        tune="psnr",
        **{x264p: "chroma-qp-offset=-3"},
    )
    x264(
        "x264 superfast+mbtree crf 22 psnr",
        preset="superfast",
        crf="22",
        tune="psnr",
        **{x264p: "mbtree=1:rc-lookahead=10"},
    )
    for crf in ("22", "23"):
        x264(
            f"x264 superfast+mbtree crf {crf} psnr chroma-qp -3",
            preset="superfast",
            crf=crf,
            tune="psnr",
            **{x264p: "mbtree=1:rc-lookahead=10:chroma-qp-offset=-3"},
        )
    x264(
        "x264 superfast+mbtree crf 22 chroma-qp -3",
        preset="superfast",
        crf="22",
        **{x264p: "mbtree=1:rc-lookahead=10:chroma-qp-offset=-3"},
    )
    # a step up from superfast: hexagon search and sub-pixel refinement 2 (veryfast's motion
    # search), or veryfast and faster themselves, each with the PSNR tuning and chroma offset
    tuned = "mbtree=1:rc-lookahead=10:chroma-qp-offset=-3"
    for crf in ("22", "23"):
        x264(
            f"x264 superfast+mbtree+hex crf {crf} psnr chroma-qp -3",
            preset="superfast",
            crf=crf,
            tune="psnr",
            **{x264p: tuned + ":me=hex:subme=2"},
        )
    for crf, extra in (
        ("22.5", ":subme=2"),
        ("23", ":me=hex:subme=2:trellis=1"),
        ("23", ":me=hex:subme=2:ref=2"),
        ("23", ":subme=2:trellis=1:ref=2"),
        ("23", ":me=hex:subme=2:trellis=1:ref=2"),
        ("23.5", ":subme=2:trellis=1:ref=2"),
        ("23", ":subme=2:trellis=1:ref=2:threads=1"),
        ("23", ":subme=2:trellis=1:ref=2:threads=2"),
        ("23", ":subme=2:trellis=1:ref=2:sliced-threads=1"),
    ):
        x264(
            f"x264 superfast+mbtree{extra.replace(':', '+')} crf {crf} psnr chroma-qp -3",
            preset="superfast",
            crf=crf,
            tune="psnr",
            **{x264p: tuned + extra},
        )
    for preset, crfs in (("veryfast", ("22", "22.5", "23")), ("faster", ("23", "24"))):
        for crf in crfs:
            x264(
                f"x264 {preset} crf {crf} psnr chroma-qp -3",
                preset=preset,
                crf=crf,
                tune="psnr",
                **{x264p: "chroma-qp-offset=-3"},
            )
    x264(
        "x264 ultrafast+cabac+deblock crf 21",
        preset="ultrafast",
        crf="21",
        **{x264p: "cabac=1:deblock=1,0,0:8x8dct=1"},
    )
    for crf in ("32", "36"):
        vp9 = {"deadline": "realtime", "cpu-used": "8", "row-mt": "1", "crf": crf, "b": "0"}
        enc = pyav_encoder("webm", "libvpx-vp9", "yuv420p", vp9)
        rows.append((f"vp9 realtime cpu-used 8 crf {crf}", ".webm", enc))
    hevc = {"preset": "ultrafast", "crf": "28", "x265-params": "log-level=error"}
    rows.append(("hevc ultrafast crf 28", ".mp4", pyav_encoder("mp4", "libx265", "yuv420p", hevc)))
    av1 = {"preset": "12", "crf": "35", "svtav1-params": "lp=2"}
    rows.append(
        ("av1 svt preset 12 crf 35", ".mp4", pyav_encoder("mp4", "libsvtav1", "yuv420p", av1))
    )
    mjpeg = {"q:v": "3"}
    enc = pyav_encoder("avi", "mjpeg", "yuvj420p", mjpeg, convert="sws")
    rows.append(("mjpeg q 3 (swscale)", ".avi", enc))
    if only:
        rows = [r for r in rows if only in r[0] or r[0].startswith("mp4v")]
    return rows


# -------------------------------------------------------------------------------- measuring
def psnr(path: str, frames: list[np.ndarray]) -> tuple[float, int]:
    """PSNR (dB) of the decoded file against `frames`, over every pixel; and frames decoded."""
    sse, n = 0.0, 0
    with av.open(path) as f:
        for k, frame in enumerate(f.decode(video=0)):
            if k >= len(frames):
                break
            # one decoder for every 4:2:0 row: the planes through cv2 (BT.601, as they were
            # made); full-range JPEG planes through FFmpeg
            if frame.format.name == "yuv420p":
                image = cv2.cvtColor(frame.to_ndarray(), cv2.COLOR_YUV2BGR_I420)
            else:
                image = frame.to_ndarray(format="bgr24")
            d = image.astype(np.int32) - frames[k]
            sse += float(np.einsum("ijk,ijk->", d, d, dtype=np.int64))
            n += 1
    mse = sse / (n * frames[0].size) if n else float("inf")
    return (10 * np.log10(255.0**2 / mse) if mse > 0 else float("inf")), n


def measure(encode: Callable, frames: list[np.ndarray], path: str) -> tuple[float, float, int]:
    """(wall ms per frame, CPU ms per frame, bytes)."""
    if os.path.exists(path):
        os.remove(path)
    w0, c0 = time.perf_counter(), time.process_time()
    encode(frames, path)
    wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    return 1000 * wall / len(frames), 1000 * cpu / len(frames), os.path.getsize(path)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=132)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--only", default=None, help="rows whose label contains this (and mp4v)")
    args = ap.parse_args(argv)
    t = time.perf_counter()
    frames = drawn_frames(args.frames)
    h, w = frames[0].shape[:2]
    print(
        f"{len(frames)} drawn frames of {w}x{h} in {time.perf_counter() - t:.1f} s; "
        f"PyAV {av.__version__}, FFmpeg {av.ffmpeg_version_info}, {os.cpu_count()} cores"
    )
    rows = candidates(args.only)
    results: dict[str, list[tuple[float, float, int]]] = {label: [] for label, _, _ in rows}
    quality: dict[str, tuple[float, int]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.repeats):
            for label, ext, encode in rows:  # alternate: each round measures every row
                path = os.path.join(tmp, "bench" + ext)
                results[label].append(measure(encode, frames, path))
                if label not in quality:
                    quality[label] = psnr(path, frames)
    base_size = statistics.median(r[2] for r in results["mp4v (OpenCV)"])
    base_psnr = quality["mp4v (OpenCV)"][0]
    print()
    head = f"| {'encoder':52} | kB/frame | x mp4v | PSNR dB | wall ms | CPU ms | meets size+PSNR |"
    print(head)
    print("|" + "|".join("-" * (len(c)) for c in head.split("|")[1:-1]) + "|")
    for label, _, _ in rows:
        wall = statistics.median(r[0] for r in results[label])
        cpu = statistics.median(r[1] for r in results[label])
        size = statistics.median(r[2] for r in results[label])
        db, n = quality[label]
        ok = size <= 0.35 * base_size and db >= base_psnr
        note = "" if n == len(frames) else f" ({n} frames decoded)"
        print(
            f"| {label:52} | {size / len(frames) / 1000:8.1f} | {size / base_size:6.2f} | "
            f"{db:7.2f} | {wall:7.1f} | {cpu:6.1f} | {'yes' if ok else 'no':15} |{note}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
