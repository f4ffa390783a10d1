"""The error of the training stage, raised by the trainer and by its resume state."""

from __future__ import annotations

from mww.errors import MwwError


class TrainError(MwwError):
    """Training cannot start or go on; the message says what to do."""
