"""The error raised for unusable files, and the warn-or-raise policy around it."""
from __future__ import annotations

import logging
from pathlib import Path

logger = logging.getLogger("gara_model.data")


class BadDataError(RuntimeError):
    """A file that cannot give a valid sample (missing, corrupt, empty mask ...)."""

    def __init__(self, path: str | Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason


def report(error: BadDataError, strict: bool) -> None:
    """Raise ``error`` when ``strict``, else log it as a warning (the caller skips the item)."""
    if strict:
        raise error
    logger.warning("skipped bad data: %s", error)
