"""The window under a real X server (Xvfb): it opens, shows the frames, and keys sent with xdotool
change the settings, save a screenshot and quit. Skipped only when the Xvfb binary is missing."""

from __future__ import annotations

import json
import os
import select
import shutil
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from liveheat.outputs.display import display_available
from tests.helpers.mjpeg_server import load_frames
from tests.helpers.videos import CLIP
from tests.helpers.window_child import FRAME_SIZE, N_FRAMES

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def xvfb(monkeypatch, tmp_path):
    """A private X server on a free display (no TCP); DISPLAY points at it for this test only."""
    if shutil.which("Xvfb") is None:
        pytest.skip("Xvfb is not installed (apt-get install xvfb xdotool)")
    fbdir = tmp_path / "fb"
    fbdir.mkdir()
    read_fd, write_fd = os.pipe()
    log = open(tmp_path / "xvfb.log", "wb")  # noqa: SIM115 - closed at teardown
    proc = subprocess.Popen(
        ["Xvfb", "-displayfd", str(write_fd), "-nolisten", "tcp",
         "-screen", "0", "1024x768x24", "-fbdir", str(fbdir)],
        pass_fds=(write_fd,), stdout=log, stderr=log,
    )  # fmt: skip
    os.close(write_fd)
    try:
        ready, _, _ = select.select([read_fd], [], [], 15)
        number = os.read(read_fd, 16).decode().strip() if ready else ""
        assert number.isdigit(), (
            f"Xvfb did not report a display: {(tmp_path / 'xvfb.log').read_text()}"
        )
        monkeypatch.setenv("DISPLAY", f":{number}")
        monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
        yield SimpleNamespace(display=f":{number}", framebuffer=fbdir / "Xvfb_screen0")
    finally:
        os.close(read_fd)
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        log.close()


def read_xwd(path: Path) -> np.ndarray:
    """The X screen as BGR from Xvfb's -fbdir XWD file."""
    data = path.read_bytes()
    fields = struct.unpack(">25I", data[:100])
    header_size, depth, width, height = fields[0], fields[3], fields[4], fields[5]
    byte_order, bpp, bytes_per_line, ncolors = fields[7], fields[11], fields[12], fields[19]
    assert depth == 24 and bpp == 32, (depth, bpp)
    start = header_size + 12 * ncolors
    pixels = np.frombuffer(data, np.uint8, height * bytes_per_line, start)
    pixels = pixels.reshape(height, bytes_per_line)[:, : width * 4].reshape(height, width, 4)
    return pixels[..., :3].copy() if byte_order == 0 else pixels[..., 1:][..., ::-1].copy()


class Child:
    """The window process: its JSON state lines, collected by a reader thread."""

    def __init__(self, title: str, shots: Path, log: Path) -> None:
        self._log = open(log, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.helpers.window_child", title, str(shots)],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=self._log, text=True,
        )  # fmt: skip
        self.states: list[dict] = []
        self._cond = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            with self._cond:
                self.states.append(json.loads(line))
                self._cond.notify_all()

    def wait_for(self, predicate, what: str, timeout: float = 15.0) -> dict:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                if self.states and predicate(self.states[-1]):
                    return self.states[-1]
                left = deadline - time.monotonic()
                if left <= 0 or self.proc.poll() is not None and not self._reader.is_alive():
                    last = self.states[-1] if self.states else None
                    raise AssertionError(f"window never reached: {what}; last state {last}")
                self._cond.wait(min(left, 0.2))

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._reader.join(5)
        self._log.close()


def xdotool(*args: str) -> str:
    out = subprocess.run(["xdotool", *args], capture_output=True, text=True, timeout=20)
    assert out.returncode == 0, f"xdotool {' '.join(args)} failed: {out.stderr}"
    return out.stdout.strip()


def test_display_is_available_under_xvfb(xvfb):
    ok, why = display_available()
    assert ok, why
    assert xvfb.display in why


def test_window_shows_frames_and_keys_take_effect(xvfb, tmp_path):
    title = f"liveheat-test-{os.getpid()}"
    shots = tmp_path / "shots"
    child = Child(title, shots, tmp_path / "child.log")
    try:
        first = child.wait_for(lambda s: s["ready"], "first frame shown", timeout=30)
        assert (first["colormap"], first["alpha"], first["paused"]) == ("jet", 0.5, False)
        window = xdotool("search", "--sync", "--name", title).split()[0]

        def press(key: str, predicate, what: str) -> dict:
            xdotool("key", "--window", window, key)
            return child.wait_for(predicate, what)

        press("c", lambda s: s["colormap"] == "turbo", "c: next colormap")
        press("plus", lambda s: s["alpha"] == 0.6, "+: alpha up")
        press("equal", lambda s: s["alpha"] == 0.7, "=: alpha up")
        press("minus", lambda s: s["alpha"] == 0.6, "-: alpha down")
        press("p", lambda s: s["panels"] is True, "p: panels on")
        press("m", lambda s: s["method"] == "eigen", "m: next method")
        press("bracketright", lambda s: s["target"] == 1, "]: next class")
        paused = press("space", lambda s: s["paused"] is True, "space: pause")

        # the screen really shows the paused frame (its top part: the toast sits at the bottom)
        frames = load_frames(CLIP, size=FRAME_SIZE, limit=N_FRAMES)
        shown = frames[paused["shown"]]
        time.sleep(0.3)  # let the X server finish drawing
        screen = read_xwd(xvfb.framebuffer)
        top = shown[: FRAME_SIZE[1] // 2]
        score = cv2.minMaxLoc(cv2.matchTemplate(screen, top, cv2.TM_CCOEFF_NORMED))[1]
        assert score > 0.95, score
        other = frames[(paused["shown"] + N_FRAMES // 2) % N_FRAMES][: FRAME_SIZE[1] // 2]
        assert np.abs(other.astype(int) - top).mean() > 5  # the match is specific

        state = press("s", lambda s: len(s["screenshots"]) == 1, "s: screenshot")
        png = Path(state["screenshots"][0])
        assert png.parent == shots and png.suffix == ".png"
        assert np.array_equal(cv2.imread(str(png)), shown)  # the frame, without overlays

        press("h", lambda s: s["help"] is True, "h: help on")
        time.sleep(0.3)
        centre = read_xwd(xvfb.framebuffer)
        assert cv2.minMaxLoc(cv2.matchTemplate(centre, shown, cv2.TM_CCOEFF_NORMED))[1] < 0.9
        press("h", lambda s: s["help"] is False, "h: help off")
        press("space", lambda s: s["paused"] is False, "space: resume")
        press("q", lambda s: s["stop"] is True, "q: quit")
        assert child.proc.wait(15) == 0
    finally:
        child.stop()


def test_escape_quits(xvfb, tmp_path):
    title = f"liveheat-esc-{os.getpid()}"
    child = Child(title, tmp_path, tmp_path / "child.log")
    try:
        child.wait_for(lambda s: s["ready"], "first frame shown", timeout=30)
        window = xdotool("search", "--sync", "--name", title).split()[0]
        xdotool("key", "--window", window, "Escape")
        child.wait_for(lambda s: s["stop"] is True, "Esc: quit")
        assert child.proc.wait(15) == 0
    finally:
        child.stop()


def close_like_a_window_manager(display: str, window: int) -> None:
    """Send WM_DELETE_WINDOW (what a window manager sends when its close button is clicked)."""
    import ctypes
    import ctypes.util

    x11 = ctypes.CDLL(ctypes.util.find_library("X11"))
    x11.XOpenDisplay.restype = ctypes.c_void_p
    x11.XOpenDisplay.argtypes = [ctypes.c_char_p]
    x11.XInternAtom.restype = ctypes.c_ulong
    x11.XInternAtom.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int]

    class ClientMessage(ctypes.Structure):
        _fields_ = [
            ("type", ctypes.c_int),
            ("serial", ctypes.c_ulong),
            ("send_event", ctypes.c_int),
            ("display", ctypes.c_void_p),
            ("window", ctypes.c_ulong),
            ("message_type", ctypes.c_ulong),
            ("format", ctypes.c_int),
            ("data", ctypes.c_long * 5),
        ]

    class XEvent(ctypes.Union):
        _fields_ = [("xclient", ClientMessage), ("pad", ctypes.c_long * 24)]

    x11.XSendEvent.argtypes = [
        ctypes.c_void_p, ctypes.c_ulong, ctypes.c_int, ctypes.c_long, ctypes.POINTER(XEvent),
    ]  # fmt: skip
    x11.XFlush.argtypes = [ctypes.c_void_p]
    x11.XCloseDisplay.argtypes = [ctypes.c_void_p]
    dpy = x11.XOpenDisplay(display.encode())
    assert dpy, f"cannot open {display}"
    try:
        event = XEvent()
        event.xclient.type = 33  # ClientMessage
        event.xclient.window = window
        event.xclient.message_type = x11.XInternAtom(dpy, b"WM_PROTOCOLS", 0)
        event.xclient.format = 32
        event.xclient.data[0] = x11.XInternAtom(dpy, b"WM_DELETE_WINDOW", 0)
        assert x11.XSendEvent(dpy, window, 0, 0, ctypes.byref(event))
        x11.XFlush(dpy)
    finally:
        x11.XCloseDisplay(dpy)


def test_closing_the_window_requests_stop(xvfb, tmp_path):
    title = f"liveheat-close-{os.getpid()}"
    child = Child(title, tmp_path, tmp_path / "child.log")
    try:
        child.wait_for(lambda s: s["ready"], "first frame shown", timeout=30)
        window = int(xdotool("search", "--sync", "--name", title).split()[0])
        close_like_a_window_manager(xvfb.display, window)
        child.wait_for(lambda s: s["stop"] is True, "window closed: stop requested")
        assert child.proc.wait(15) == 0
    finally:
        child.stop()
