"""Exceptions raised by the data set builders.

Every error a user can cause (a wrong folder, a build that does not exist yet, an
output folder holding another build) derives from :class:`DatasetError`, so the CLI
can print it and exit 2 without a traceback. :class:`DecodeError` is internal: it
marks one bad source image, which the build counts and skips.
"""


class DatasetError(Exception):
    """A problem the user must fix; the message says what and how."""


class LayoutError(DatasetError):
    """The source folder does not have the raw release's layout."""


class NotBuiltError(DatasetError):
    """A data set was asked for by name but no finished build exists."""


class StaleBuildError(DatasetError):
    """``--out`` holds a (partial) build made with other parameters or another source."""


class DecodeError(Exception):
    """One source image cannot be decoded or normalised to RGB."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
