"""A camera stand-in for tests: serves frames of a real clip as MJPEG over HTTP on 127.0.0.1.

`with MjpegServer(path_or_frames, fps=25, port=0) as srv: open_source(srv.url)`.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import cv2
import numpy as np

BOUNDARY = "liveheatframe"


def load_frames(
    path: str | os.PathLike, *, size: tuple[int, int] | None = None, limit: int | None = None
) -> list[np.ndarray]:
    """Decode a video file into a list of BGR frames (optionally resized to `size` = (W, H)).

    Examples:
        >>> frames = load_frames("liveheat/data/bigbuckbunny.mp4", size=(320, 180), limit=5)
        >>> len(frames), frames[0].shape
        (5, (180, 320, 3))
    """
    cap = cv2.VideoCapture(os.fspath(path))
    frames: list[np.ndarray] = []
    try:
        while limit is None or len(frames) < limit:
            ok, image = cap.read()
            if not ok:
                break
            if size is not None:
                image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
            frames.append(image)
    finally:
        cap.release()
    if not frames:
        raise ValueError(f"no frames could be read from {os.fspath(path)!r}")
    return frames


class MjpegServer:
    """Serve frames as `multipart/x-mixed-replace` MJPEG at `srv.url`, paced at `fps`, looping.

    Every client gets its own stream starting at frame 0. `disconnect()` drops the clients that
    are connected now (they may reconnect); `pause()` / `resume()` stall every stream without
    closing it; `close()` (or leaving the `with` block) stops the server and joins its threads.

    Examples:
        >>> with MjpegServer("liveheat/data/bigbuckbunny.mp4", fps=25, size=(320, 180)) as srv:
        ...     srv.url.startswith("http://127.0.0.1:")
        True
    """

    def __init__(
        self,
        path_or_frames: str | os.PathLike | Sequence[np.ndarray],
        *,
        fps: float = 25.0,
        port: int = 0,
        size: tuple[int, int] | None = (320, 180),
        limit: int | None = 60,
        loop: bool = True,
        quality: int = 85,
    ) -> None:
        if isinstance(path_or_frames, (str, os.PathLike)):
            frames = load_frames(path_or_frames, size=size, limit=limit)
        else:
            frames = [np.asarray(f) for f in path_or_frames]
        if not frames:
            raise ValueError("MjpegServer needs at least one frame")
        self.fps = float(fps)
        self.loop = loop
        self.jpegs: list[bytes] = []
        for f in frames:
            ok, buf = cv2.imencode(".jpg", f, [cv2.IMWRITE_JPEG_QUALITY, quality])
            assert ok
            self.jpegs.append(buf.tobytes())
        self.frames_sent = 0  # over all clients
        self.connections = 0  # clients accepted so far
        self._generation = 0  # bumped by disconnect()
        self._running = threading.Event()
        self._running.set()  # cleared by pause()
        self._closed = threading.Event()
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # keep test output clean
                pass

            def do_GET(self) -> None:  # noqa: N802 (http.server API)
                if self.path.split("?")[0] not in ("/", "/stream.mjpg", "/video"):
                    self.send_error(404, "try /stream.mjpg")
                    return
                with server._lock:
                    server.connections += 1
                    generation = server._generation
                self.send_response(200)
                self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
                self.send_header("Cache-Control", "no-cache")
                self.send_header("Connection", "close")
                self.end_headers()
                server._stream(self.wfile, generation)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/stream.mjpg"
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def _stream(self, wfile, generation: int) -> None:
        period = 1.0 / self.fps
        t0 = time.monotonic()
        i = 0
        while not self._closed.is_set() and generation == self._generation:
            if not self._running.is_set():
                self._running.wait(0.05)
                t0 = time.monotonic() - i * period
                continue
            if i >= len(self.jpegs) and not self.loop:
                return
            jpeg = self.jpegs[i % len(self.jpegs)]
            head = (
                f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n"
            ).encode()
            try:
                wfile.write(head + jpeg + b"\r\n")
                wfile.flush()
            except OSError:
                return
            with self._lock:
                self.frames_sent += 1
            i += 1
            delay = t0 + i * period - time.monotonic()
            if delay > 0:
                self._closed.wait(delay)

    def disconnect(self) -> None:
        """Drop every client connected now (the server keeps accepting new ones)."""
        with self._lock:
            self._generation += 1

    def pause(self) -> None:
        """Stall every stream (connections stay open, no bytes flow)."""
        self._running.clear()

    def resume(self) -> None:
        """Let stalled streams flow again."""
        self._running.set()

    def close(self) -> None:
        """Stop serving, drop every client, join the server thread (idempotent)."""
        if self._closed.is_set():
            return
        self._closed.set()
        self._running.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> MjpegServer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
