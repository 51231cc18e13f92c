"""The pipeline: annotate frames (no threads) and run a source through outputs (threads).

`Runner` holds threads and queues; `RunStats` counts; `preflight` checks before a run.
"""

from liveheat.pipeline.preflight import preflight
from liveheat.pipeline.runner import Runner, run_video
from liveheat.pipeline.stats import RunStats

__all__ = ["RunStats", "Runner", "preflight", "run_video"]
