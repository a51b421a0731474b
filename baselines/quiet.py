"""Quiet logs: the libraries' progress bars follow the run's ``progress``, and warnings that only restate
our own choices are kept out.

diffusers, transformers and huggingface_hub each draw their own bars (loading weights, fetching
files) with carriage returns, which turn a log file into one long line; with progress off (the
default when stderr is not a terminal) they are turned off too. Two warnings say nothing a user
can act on: diffusers' note that a scheduler config lacks ``clip_sample`` (we set the scheduler
ourselves) and its note that some UNet modules are kept in float32 (the model's own rule, which
our dtype record states). They are filtered by their message, so every other warning still shows.
"""

from __future__ import annotations

import logging
import re
import sys
import warnings
from typing import Optional

#: Message fragments of the warnings we drop: each restates a choice the run already records.
OUR_CHOICES = (
    "has not set the configuration `clip_sample`",
    "that should be kept in float32",
)


class _OurChoices(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(fragment in message for fragment in OUR_CHOICES)


_FILTER = _OurChoices()


def _library_handlers() -> list[logging.Handler]:
    """The handlers of the three libraries' root loggers (records of their child loggers reach these; a
    filter on a logger would miss its children's), and the root logger's for what propagates there."""
    import diffusers.utils.logging as diffusers_logging
    import transformers.utils.logging as transformers_logging

    loggers = [diffusers_logging.get_logger("diffusers"), transformers_logging.get_logger("transformers"),
               logging.getLogger("huggingface_hub"), logging.getLogger()]
    return [handler for logger in loggers for handler in logger.handlers]


def quiet_libraries(progress: Optional[bool] = None) -> bool:
    """Set the libraries' progress bars to the run's ``progress`` (None: only on a terminal) and drop the
    warnings of :data:`OUR_CHOICES`; returns whether bars are shown. Safe to call again."""
    import diffusers.utils.logging as diffusers_logging
    import huggingface_hub.utils as hub_utils
    import transformers.utils.logging as transformers_logging

    shown = sys.stderr.isatty() if progress is None else bool(progress)
    if shown:
        diffusers_logging.enable_progress_bar()
        transformers_logging.enable_progress_bar()
        hub_utils.enable_progress_bars()
    else:
        diffusers_logging.disable_progress_bar()
        transformers_logging.disable_progress_bar()
        hub_utils.disable_progress_bars()
    for handler in _library_handlers():
        if _FILTER not in handler.filters:
            handler.addFilter(_FILTER)
    for fragment in OUR_CHOICES:  # the same notes where they come as Python warnings (diffusers' deprecate)
        warnings.filterwarnings("ignore", message=f"(?s).*{re.escape(fragment)}")
    return shown
