"""Where annotated frames go: a video file, a window with keys, a browser stream.

Every output has `write(image, frame)` and an idempotent `close()`.
"""

from liveheat.outputs.display import display_available
from liveheat.outputs.keys import KEYS, Controls
from liveheat.outputs.stream.server import StreamServer
from liveheat.outputs.video import VideoSink
from liveheat.outputs.window import Window

__all__ = ["KEYS", "Controls", "StreamServer", "VideoSink", "Window", "display_available"]
