"""What the command-line tools (`python -m gara_model.train`, `... .evaluate`) share."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from contextlib import contextmanager

from gara_model.checkpoint import CheckpointError


@contextmanager
def one_line_errors(parser: argparse.ArgumentParser, also: tuple[type[Exception], ...] = ()) -> Iterator[None]:
    """A missing, refused or already existing file the user named (or an error of the tool's own kinds `also`, whose
    messages are one line) ends the tool with `error: <message>` and exit status 2 (as argparse does for a bad
    argument); any other exception keeps its traceback, since it is a bug to report."""
    try:
        yield
    except (FileNotFoundError, FileExistsError, CheckpointError, *also) as error:
        parser.exit(2, f"error: {error}\n")
