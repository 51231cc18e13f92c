"""Test helpers: camera stand-ins (MJPEG server, image sequences) and video file surgery."""
