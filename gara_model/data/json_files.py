"""Reading JSON label files; a file that cannot be read or parsed raises BadDataError."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .errors import BadDataError


def read_json(path: str | Path, what: str) -> Any:
    """Parse ``path``; ``what`` names the file's role in the error (``"annotation file"``)."""
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise BadDataError(path, f"cannot read {what} ({error})") from error


def json_kind(value: Any) -> str:
    """The JSON kind of a parsed value, with its article: ``"a number"``, ``"an object"`` ..."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "a list" if isinstance(value, list) else "an object"
