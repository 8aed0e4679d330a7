"""The one exception family the package raises for problems a user can fix.

Everything that reaches a user (CLI, app, API) is a `FerError` with a message that says what is wrong
and what to do; anything else escaping the package is a bug.
"""

from pathlib import Path


class FerError(Exception):
    """Base class: a clear, user-facing problem (bad input, missing data, bad weights)."""


class DataError(FerError):
    """The dataset folder is missing, empty or laid out wrongly."""


class ImageError(FerError):
    """An input file is not a usable image (corrupt, unsupported, too large, ...)."""


class VideoError(FerError):
    """A video file cannot be read or analysed (not a video, too long, damaged, ...)."""


class WeightsError(FerError):
    """A weights file is missing, corrupt, tampered with or not a fer checkpoint."""


def write_user_file(path, text: str, encoding: str = "utf-8") -> None:
    """Write an output file the user named; a path that cannot be written is a FerError, not a traceback."""
    try:
        Path(path).write_text(text, encoding=encoding, newline="")
    except OSError as error:
        raise FerError(f"Cannot write {path} ({error.strerror or error}); choose a folder you can write to.") from error
