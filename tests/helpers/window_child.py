"""Runs a liveheat Window in its own process for the Xvfb test (Qt must not live in pytest's).

`python -m tests.helpers.window_child TITLE SCREENSHOT_DIR`: shows frames of the bundled clip,
keeps polling keys while paused, and prints its state as one JSON line whenever it changes.
"""

from __future__ import annotations

import json
import sys
import time

from liveheat.outputs.window import Window
from liveheat.settings.fields import Settings
from tests.helpers.mjpeg_server import load_frames
from tests.helpers.videos import CLIP

FRAME_SIZE = (640, 360)
N_FRAMES = 25


def main(title: str, screenshot_dir: str, seconds: float = 60.0) -> int:
    frames = load_frames(CLIP, size=FRAME_SIZE, limit=N_FRAMES)
    settings = Settings()
    win = Window(settings, title=title, screenshot_dir=screenshot_dir)
    last = None
    shown = -1
    i = 0
    deadline = time.monotonic() + seconds
    try:
        while not win.stop_requested and time.monotonic() < deadline:
            if settings.paused:
                win.poll(20)
            else:
                shown = i % N_FRAMES
                win.write(frames[shown])
                i += 1
                time.sleep(0.02)
            state = {
                "ready": win.frames_shown > 0,
                "shown": shown,
                "colormap": settings.colormap,
                "alpha": settings.alpha,
                "panels": settings.panels,
                "paused": settings.paused,
                "method": settings.method,
                "target": settings.target,
                "help": win.show_help,
                "screenshots": [str(p) for p in win.screenshots],
                "stop": win.stop_requested,
            }
            key = {k: v for k, v in state.items() if k != "shown" or settings.paused}
            if key != last:
                print(json.dumps(state), flush=True)
                last = key
    finally:
        win.close()
    return 0 if win.stop_requested else 3


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
