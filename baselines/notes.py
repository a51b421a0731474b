"""Notes that a sample's record keeps: what happened while a sample was made that changes what its
figures mean, such as a VAE decode that ran out of memory and went on a few windows at a time (the
same image, more seconds). Code deep inside a method raises them as warnings of one category, so it
needs no handle on the record; the runner collects them per sample (:func:`sample_notes`)."""

from __future__ import annotations

import warnings
from contextlib import contextmanager
from typing import Iterator


class SampleNote(UserWarning):
    """Something a sample's figures should be read with; it is written into the sample's record."""


@contextmanager
def sample_notes() -> Iterator[list[str]]:
    """The messages of the :class:`SampleNote` warnings raised inside, each once and in order, also when the
    block raises; every warning, notes included, is still shown as it would be without this."""
    notes: list[str] = []
    caught: list[warnings.WarningMessage] = []
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", SampleNote)
            yield notes
    finally:
        for warning in caught:
            if issubclass(warning.category, SampleNote) and str(warning.message) not in notes:
                notes.append(str(warning.message))
            warnings.showwarning(warning.message, warning.category, warning.filename, warning.lineno)
