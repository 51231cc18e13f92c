"""The one exception type a user sees as `liveheat: error: ...` (exit 2)."""


class LiveheatError(Exception):
    """A problem the user can act on: bad input, bad file, bad setting. One line, no traceback.

    Every error liveheat means a user to read is one (`SettingError` too, which is also a
    `ValueError`); the command line prints it as ``liveheat: error: <message>`` and exits 2.

    Args:
        *args: the message, as for any `Exception` (one line that says what to do).

    Examples:
        >>> import liveheat
        >>> try:
        ...     liveheat.Settings(mode="glow")
        ... except liveheat.LiveheatError as e:
        ...     print(f"liveheat: error: {e}")
        liveheat: error: mode = 'glow': expected one of color, gray, mask, transparent
        >>> issubclass(LiveheatError, Exception)
        True
    """
