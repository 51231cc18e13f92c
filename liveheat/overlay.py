"""Drawing: normalise a 2D map, colour it, blend it onto a frame (pure numpy + OpenCV, no I/O).

(Being written: the full implementation lands shortly; signatures below are final.)
"""
