"""The one exception type a user sees as `liveheat: error: ...` (exit 2)."""


class LiveheatError(Exception):
    """A problem the user can act on: bad input, bad file, bad setting. One line, no traceback."""
