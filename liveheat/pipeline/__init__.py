"""The pipeline: annotate frames (no threads) and run a source through outputs (threads).

`Annotator` makes one annotated frame from one frame; `Runner` holds the threads and queues
around it; `annotate_video` opens a source and the outputs the settings ask for and runs it.
"""

from liveheat.pipeline.annotator import Annotation, Annotator
from liveheat.pipeline.preflight import preflight
from liveheat.pipeline.runner import Runner
from liveheat.pipeline.stats import RunStats
from liveheat.pipeline.video import annotate_video, outputs_from_settings, run_video

__all__ = [
    "Annotation",
    "Annotator",
    "RunStats",
    "Runner",
    "annotate_video",
    "outputs_from_settings",
    "preflight",
    "run_video",
]
