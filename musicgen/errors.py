"""The one exception type the CLI and the app turn into a plain message."""


class MusicgenError(Exception):
    """A problem the user can fix (bad input, missing file or library); never a bug."""
