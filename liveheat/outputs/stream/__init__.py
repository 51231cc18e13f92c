"""The browser stream: an MJPEG stream, stats and live settings over HTTP."""

from liveheat.outputs.stream.server import StreamServer, server_from_settings

__all__ = ["StreamServer", "server_from_settings"]
