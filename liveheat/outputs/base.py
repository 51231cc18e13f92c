"""What every output is: the `Output` protocol, and `OutputBase` with its defaults.

The runner hands each drawn frame to every output on its own thread, in frame order.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class Output(Protocol):
    """Where annotated frames go (a file, a window, a stream, the maps file).

    Attributes:
        records: True for a recorder (a file): it gets every frame exactly once. False for a
            viewer (a window, the stream), which also gets the repeats of a paused picture.
        stop_requested: becomes True when the output asks the run to end (`q` in a window).
    """

    records: bool
    stop_requested: bool

    def write(self, image: np.ndarray, frame: Any = None, annotation: Any = None) -> None:
        """Take one drawn image; `frame` is the source `Frame`, `annotation` the Annotator's
        `Annotation` for it (maps, features), or None."""

    def notify(self, text: str) -> None:
        """Show a short note to whoever watches (a live change undone, say)."""

    def close(self) -> None:
        """Finish (finalise the file, close the window); idempotent."""


class OutputBase:
    """Defaults for an `Output`: a viewer that never asks to stop, notes ignored; a context
    manager that always closes. Subclasses implement `write` (and `close` when they hold
    something)."""

    records: bool = False
    stop_requested: bool = False

    def write(self, image: np.ndarray, frame: Any = None, annotation: Any = None) -> None:
        raise NotImplementedError

    def notify(self, text: str) -> None:  # noqa: B027 - a no-op by default
        """Ignore notes (a file has nobody to tell)."""

    def close(self) -> None:  # noqa: B027 - nothing to release by default
        """Nothing to release."""

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
