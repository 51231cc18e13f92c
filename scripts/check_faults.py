"""Replay the outside test's fault table (issue 13) and print one line a row: fixed or not.

Usage: python scripts/check_faults.py [--only N[,N...]]

Every row runs the real command line (`python -m liveheat`) or the real stream server, the
way the outside test did, and checks what a user would see: the exit status, that stderr is
one `liveheat:` line (no traceback, no "internal error", no OpenCV line), the files left
behind. Exit status 1 when a row is not fixed. The same cases are regression tests in
tests/test_faults.py.
"""

from __future__ import annotations

import argparse
import http.server
import importlib.util
import json
import os
import re
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import zlib
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

if importlib.util.find_spec("liveheat") is None:  # not installed: this checkout's
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # (PYTHONPATH=OLD_TREE
    # replays the table against an older liveheat, in this process and its commands alike)

import liveheat  # noqa: E402

CLIP = liveheat.bundled_clip()


def cli(*args, timeout: float = 60, env=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "liveheat", *map(str, args)],
        capture_output=True, text=True, timeout=timeout, env=env,
    )  # fmt: skip


def clean(r: subprocess.CompletedProcess, code: int) -> str | None:
    """None when `r` exited `code` with only `liveheat:` lines on stderr (at most one error
    line), else what is wrong."""
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    if r.returncode != code:
        return f"exit {r.returncode}, expected {code}: {r.stderr.strip()[-200:]}"
    if any(not ln.startswith("liveheat: ") for ln in lines):
        return f"other lines on stderr: {lines[:2]}"
    if any("internal error" in ln for ln in lines):
        return "internal error"
    if sum(ln.startswith("liveheat: error:") for ln in lines) > 1:
        return "more than one error line"
    return None


class Mjpeg:
    """A local multipart/x-mixed-replace server of JPEG parts, some of them damaged."""

    def __init__(self, parts: list[bytes], fps: float = 15.0, lengths: dict | None = None):
        parts_, lengths = list(parts), lengths or {}

        class H(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
                self.end_headers()
                while True:  # looping, as a camera would
                    for i, jpeg in enumerate(parts_):
                        n = lengths.get(i, len(jpeg))
                        head = f"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: {n}\r\n\r\n"
                        try:
                            self.wfile.write(head.encode() + jpeg + b"\r\n")
                            self.wfile.flush()
                        except OSError:
                            return
                        time.sleep(1 / fps)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def clip_jpegs(n: int) -> list[bytes]:
    out = []
    with liveheat.open_source(CLIP) as src:
        for _, f in zip(range(n), src, strict=False):
            out.append(cv2.imencode(".jpg", cv2.resize(f.image, (320, 180)))[1].tobytes())
    return out


def huge_png(path: Path) -> Path:
    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", 60000, 60000, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
                     + chunk(b"IDAT", zlib.compress(b"\0" * 99)) + chunk(b"IEND", b""))  # fmt: skip
    return path


def frames_out(stdout: str) -> int:
    m = re.search(r"(\d+) frames in, (\d+) out", stdout)
    return int(m.group(2)) if m else -1


# ------------------------------------------------------------------------------- rows
def row1(tmp: Path) -> str | None:
    """one corrupt JPEG in ten: skipped; a wrong Content-Length: one reconnect, run goes on"""
    parts = clip_jpegs(60)
    for i in range(5, 60, 10):
        parts[i] = parts[i][:2] + bytes(range(256)) * 8
    for lengths in ({}, {33: len(parts[33]) + 40}):
        srv = Mjpeg(parts, lengths=lengths)
        try:
            r = cli("run", srv.url, "-o", tmp / "l.mp4", "--no-show", "--input-size", "64",
                    "--max-frames", "80")  # fmt: skip
        finally:
            srv.close()
        n, lost = frames_out(r.stdout), r.stderr.count(" lost; reconnecting")
        if r.returncode or n != 80:
            return f"{n} frames written of 80, exit {r.returncode}: {r.stderr[-160:]}"
        if lost > (1 if lengths else 0):  # the demuxer cannot resync after a wrong length
            return f"the stream was taken for lost {lost} time(s)"
        if not lengths and "damaged frames" not in r.stdout:
            return "the damaged frames were not counted"
    return None


def row2(tmp: Path) -> str | None:
    """60 sockets dribbling a header: a request with the token is still answered"""
    from liveheat.outputs.stream.server import StreamServer

    with StreamServer(token="t0k") as srv:
        socks = []
        for _ in range(60):
            s = socket.create_connection((srv.host, srv.port), timeout=5)
            s.sendall(b"GET /stats HTTP/1.0\r\n")
            socks.append(s)
        try:
            for s in socks:
                s.sendall(b"X")
            t0 = time.monotonic()
            with urllib.request.urlopen(f"{srv.url}stats?token=t0k", timeout=5) as resp:
                ok = resp.status == 200 and "clients" in json.loads(resp.read())
            took = time.monotonic() - t0
        except (OSError, urllib.error.URLError) as e:
            return f"the request with the token failed: {e}"
        finally:
            for s in socks:
                s.close()
    return None if ok and took < 2 else f"answered in {took:.1f} s"


def row3(tmp: Path) -> str | None:
    """a stream that accepts and never answers: one line, no abort, --open-timeout"""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(4)
    try:
        for scheme in ("http", "rtsp"):
            url = f"{scheme}://127.0.0.1:{server.getsockname()[1]}/"
            r = cli("run", url, "-o", tmp / "a.mp4", "--no-show", "--open-timeout", "1")
            bad = clean(r, 2)
            if bad or "terminate called" in r.stderr or "did not open within 1 s" not in r.stderr:
                return f"{scheme}: {bad or r.stderr.strip()[-120:] or 'aborted'}"
    finally:
        server.close()
    return None


def row4(tmp: Path) -> str | None:
    """one image declaring 60000x60000 in a folder: skipped with a note; alone: exit 2"""
    folder = tmp / "imgs"
    folder.mkdir()
    for i in range(5):
        cv2.imwrite(str(folder / f"{i}.png"), np.full((48, 64, 3), 30 * i, np.uint8))
    huge_png(folder / "3b.png")
    r = cli("run", folder, "-o", tmp / "f.mp4", "--no-show", "--input-size", "64")
    if clean(r, 0) or frames_out(r.stdout) != 5 or "skipping unreadable image" not in r.stderr:
        return f"folder: exit {r.returncode}, {frames_out(r.stdout)} frames: {r.stderr[:160]}"
    for verb in (("image", huge_png(tmp / "h.png"), "-o", tmp / "o.png"),
                 ("run", tmp / "h.png", "-o", tmp / "o.mp4", "--no-show")):  # fmt: skip
        bad = clean(cli(*verb), 2)
        if bad:
            return f"{verb[0]} alone: {bad}"
    return None


def row5(tmp: Path) -> str | None:
    """a FIFO as source or config: refused at once, not a hang"""
    fifo = tmp / "f.mp4"
    os.mkfifo(fifo)
    try:
        as_source = ("run", fifo, "-o", tmp / "o.mp4", "--no-show")
        as_config = ("run", CLIP, "-o", tmp / "o.mp4", "--no-show", "--config", fifo)
        for args in (as_source, as_config):
            bad = clean(cli(*args, timeout=20), 2)
            if bad:
                return bad
    except subprocess.TimeoutExpired:
        return "hangs"
    return None


def row6(tmp: Path) -> str | None:
    """deep TOML, nested labels metadata, a bad .npz, --config /dev/zero: exit 2"""
    import onnx

    from liveheat.model.bundled import models_dir

    deep = tmp / "deep.toml"
    deep.write_text("a = " + "[" * 5000 + "]" * 5000 + "\n")
    bad = tmp / "bad.npz"
    bad.write_bytes(b"PK\x03\x04 no zip")
    model = onnx.load(str(Path(models_dir()) / "efficientnet_lite0.onnx"))
    for p in model.metadata_props:
        if p.key == "liveheat.labels":
            p.value = "[" * 100000
    onnx.save(model, str(tmp / "nested.onnx"))
    grey = tmp / "g.png"
    cv2.imwrite(str(grey), np.full((32, 32), 99, np.uint8))
    cases = {
        "deep TOML": ("run", CLIP, "-o", tmp / "o.mp4", "--no-show", "--config", deep),
        "labels": ("run", CLIP, "-o", tmp / "o.mp4", "--no-show", "--model", tmp / "nested.onnx"),
        ".npz": ("image", grey, "-o", tmp / "o.png", "--heat", bad),
        "/dev/zero": ("run", CLIP, "-o", tmp / "o.mp4", "--no-show", "--config", "/dev/zero"),
    }
    for name, args in cases.items():
        bad_ = clean(cli(*args), 2)
        if bad_:
            return f"{name}: {bad_}"
    return None


def row7(tmp: Path) -> str | None:
    """image -o its own input: refused, the input unchanged"""
    p = tmp / "in.png"
    cv2.imwrite(str(p), np.full((32, 32, 3), 77, np.uint8))
    before = p.read_bytes()
    bad = clean(cli("image", p, "-o", p), 2)
    return bad or (None if p.read_bytes() == before else "the input was overwritten")


def row8(tmp: Path) -> str | None:
    """a float64 map near 1e308: drawn, no warning"""
    grey = tmp / "g.png"
    cv2.imwrite(str(grey), np.full((32, 32), 128, np.uint8))
    np.save(tmp / "big.npy", np.linspace(0.5, 1, 16).reshape(4, 4) * 1e308)
    r = cli("image", grey, "-o", tmp / "o.png", "--heat", tmp / "big.npy")
    if r.returncode or r.stderr:
        return f"exit {r.returncode}: {r.stderr.strip()[:120]}"
    diff = np.abs(cv2.imread(str(tmp / "o.png")).astype(int) - cv2.imread(str(grey))).mean()
    return None if diff > 10 else "the frame came back unchanged"


def row9(tmp: Path) -> str | None:
    """a rejected live change must not undo a valid one posted at the same moment"""
    s = liveheat.Settings(input_size=64)
    with liveheat.StreamServer(settings=s) as srv, liveheat.open_source(CLIP) as src:
        ann = liveheat.Annotator(s)

        def post(body: dict) -> int:
            req = urllib.request.Request(
                f"{srv.url}settings", json.dumps(body).encode(), method="POST",
                headers={"Content-Type": "application/json"},
            )  # fmt: skip
            try:
                with urllib.request.urlopen(req, timeout=5) as resp:
                    return resp.status
            except urllib.error.HTTPError as e:
                return e.code

        frames = iter(src)
        ann.annotate(next(frames))
        post({"method": "channel:99999"})
        post({"alpha": 0.7})
        for _ in range(3):
            srv.write(ann.annotate(next(frames)).image)
        alpha, method = s.alpha, s.method
    if alpha != 0.7:
        return f"alpha is {alpha} after the valid change (method {method})"
    return None


def row10(tmp: Path) -> str | None:
    """OpenCV's own lines never reach stderr"""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(4)
    port = server.getsockname()[1]
    cases = {
        "silent stream": (
            "run",
            f"http://127.0.0.1:{port}/",
            "-o",
            tmp / "a.mp4",
            "--no-show",
            "--open-timeout",
            "1",
        ),  # fmt: skip
        "float TIFF source": None,
    }
    tif = tmp / "f.tiff"
    cv2.imwrite(str(tif), np.random.default_rng(0).random((16, 16)).astype(np.float32))
    cases["float TIFF source"] = ("run", tif, "-o", tmp / "t.mp4", "--no-show")
    try:
        for name, args in cases.items():
            r = cli(*args)
            other = [ln for ln in r.stderr.splitlines() if ln and not ln.startswith("liveheat: ")]
            if other:
                return f"{name}: {other[0][:120]}"
    finally:
        server.close()
    return None


def row11(tmp: Path) -> str | None:
    """an empty --token or LIVEHEAT_TOKEN is an error; a token with spaces too"""
    base = ("run", CLIP, "-o", tmp / "o.mp4", "--no-show", "--serve", "0")
    env = dict(os.environ, LIVEHEAT_TOKEN="")
    for args, e in (((*base, "--token", ""), None), (base, env), ((*base, "--token", "a b"), None)):
        bad = clean(cli(*args, env=e), 2)
        if bad:
            return bad
    return None


def row12(tmp: Path) -> str | None:
    """messages that say what is wrong"""
    (tmp / "dir").mkdir()
    grey = tmp / "g.png"
    cv2.imwrite(str(grey), np.full((32, 32), 99, np.uint8))
    line = tmp / "line.png"
    cv2.imwrite(str(line), np.zeros((1, 40, 3), np.uint8))
    (tmp / "model.pt").write_bytes(b"\x80\x02 torch")
    (tmp / "junk.npy").write_bytes(b"\x93NUMPY\x01\x00 junk")
    tif = tmp / "f.tiff"
    cv2.imwrite(str(tif), np.random.default_rng(0).random((16, 16)).astype(np.float32))
    checks: list[tuple[tuple, int, Callable[[str], bool]]] = [
        (("run", line, "-o", tmp / "l.mp4", "--no-show"), 0, lambda e: "no working codec" not in e),
        (("run", grey, "-o", tmp / "dir", "--no-show"), 2, lambda e: "is a folder" in e),
        (("image", grey, "-o", f"{tmp / 'dir'}/"), 2, lambda e: "is a folder" in e),
        (("image", tmp / "dir", "-o", tmp / "o.png"), 2, lambda e: "is a folder" in e),
        (("run", tif, "-o", tmp / "t.mp4", "--no-show"), 0, lambda e: e == ""),
        (
            ("image", grey, "-o", tmp / "o.png", "--heat", tmp / "junk.npy"),
            2,
            lambda e: "pickled" not in e,
        ),  # fmt: skip
        (
            ("run", grey, "-o", tmp / "s.mp4", "--no-show", "--serve", "127.0.0.2:0"),
            0,
            lambda e: "anyone" not in e,
        ),  # fmt: skip
        (
            ("run", grey, "-o", tmp / "m.mp4", "--no-show", "--model", tmp / "model.pt"),
            2,
            lambda e: "export" in e and "ONNX" in e,
        ),  # fmt: skip
    ]
    for args, code, good in checks:
        r = cli(*args)
        bad = clean(r, code)
        if bad or not good(r.stderr.strip()):
            return f"{args[0]} {Path(str(args[1])).name}: {bad or r.stderr.strip()[:140]}"
    return None


ROWS = [row1, row2, row3, row4, row5, row6, row7, row8, row9, row10, row11, row12]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default=None, help="rows to replay, e.g. 1,3")
    args = ap.parse_args()
    only = {int(x) for x in args.only.split(",")} if args.only else None
    failed = 0
    for n, row in enumerate(ROWS, 1):
        if only and n not in only:
            continue
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.monotonic()
            try:
                why = row(Path(tmp))
            except Exception as e:  # noqa: BLE001 - a row that cannot even run is not fixed
                why = f"{type(e).__name__}: {e}"
        took = time.monotonic() - t0
        failed += why is not None
        verdict = "fixed" if why is None else "NOT fixed: " + " ".join(str(why).split())[:200]
        print(f"row {n:>2} {row.__doc__.strip()[:72]:<72} {took:5.1f} s  {verdict}", flush=True)
    print(f"\n{len(ROWS) - failed if not only else len(only) - failed} fixed, {failed} not")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
