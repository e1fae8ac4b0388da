"""A prompt file for the bag replay: the objects a person marks by hand, each from the image where it first appears.

```yaml
objects:
  - id: cup                 # any name; it is the object_id of the results
    frame: 0                # the image's index on the image topic (0 = the first), or instead
    # stamp: 1718000000.25  # seconds: the first image whose header stamp is at or after this
    points: [[320, 240]]    # (x, y) pixels; optional if there is a box
    labels: [1]             # per point 1 (foreground) or 0 (background); optional, default all 1
    box: [280, 200, 370, 300]  # x1, y1, x2, y2 pixels; optional if there are points
```

Whether a point lies inside the image is checked against the image itself, by the core, as for a live prompt.
No rclpy.
"""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass
from numbers import Real
from pathlib import Path

import numpy as np
import yaml

from gara_model.prompts import ObjectPrompt

KEYS = ("id", "frame", "stamp", "points", "labels", "box")


class PromptFileError(ValueError):
    """A prompt file that does not say what it must; the message is one line naming the file and the object."""


@dataclass(frozen=True)
class FileObject:
    """An object of a prompt file: its prompt, and the image it first appears on (an index or a stamp)."""

    prompt: ObjectPrompt
    frame: int | None  # index on the image topic
    stamp_ns: int | None  # the first image stamped at or after this


def read_prompt_file(path: str | os.PathLike) -> list[FileObject]:
    """The objects of a prompt file (module docstring), checked; PromptFileError for anything else."""
    path = Path(path)
    try:
        content = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise PromptFileError(f"{path}: no such prompt file") from None
    except (OSError, UnicodeDecodeError) as error:
        raise PromptFileError(f"{path}: cannot read the prompt file: {error}") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise PromptFileError(f"{path}: not valid YAML{where}: {getattr(error, 'problem', error)}") from None
    if not isinstance(content, dict) or set(content) != {"objects"} or not isinstance(content["objects"], list) \
            or not content["objects"]:
        raise PromptFileError(f"{path}: expected one key, 'objects:', with a list of objects (id, frame or stamp, "
                              f"points/labels and/or box); got {_describe(content)}")
    objects, seen = [], set()
    for index, entry in enumerate(content["objects"]):
        name = f"object #{index}" + (f" ({entry['id']!r})" if isinstance(entry, dict) and "id" in entry else "")
        try:
            item = _read_object(entry)
        except ValueError as error:
            raise PromptFileError(f"{path}: {name}: {error}") from None
        if item.prompt.object_id in seen:
            raise PromptFileError(f"{path}: {name}: the id is used twice")
        seen.add(item.prompt.object_id)
        objects.append(item)
    return objects


def _read_object(entry: object) -> FileObject:
    if not isinstance(entry, dict):
        raise ValueError(f"expected a mapping with keys {', '.join(KEYS)}; got {_describe(entry)}")
    for key in entry:
        if key not in KEYS:
            close = difflib.get_close_matches(str(key), KEYS, n=1)
            raise ValueError(f"unknown key {key!r}" + (f" (did you mean {close[0]!r}?)" if close else "")
                             + f"; the keys are {', '.join(KEYS)}")
    object_id = entry.get("id")
    if not isinstance(object_id, (str, int)) or isinstance(object_id, bool) or str(object_id) == "":
        raise ValueError(f"needs an id (a name), got {object_id!r}")
    if ("frame" in entry) == ("stamp" in entry):
        raise ValueError("needs either 'frame' (the image's index) or 'stamp' (seconds), not both or neither")
    frame = stamp_ns = None
    if "frame" in entry:
        frame = entry["frame"]
        if not isinstance(frame, int) or isinstance(frame, bool) or frame < 0:
            raise ValueError(f"frame must be an image index 0, 1, 2, ..., got {frame!r}")
    else:
        stamp = entry["stamp"]
        if not _is_number(stamp) or not 0 <= stamp < 2**31:
            raise ValueError(f"stamp must be a time in seconds (e.g. 1718000000.25), got {stamp!r}")
        stamp_ns = round(stamp * 1e9)
    points = entry.get("points", [])
    if not isinstance(points, list) or not all(isinstance(p, list) and len(p) == 2 and all(map(_is_number, p))
                                               for p in points):
        raise ValueError(f"points must be a list of [x, y] pixel pairs, got {points!r}")
    labels = entry.get("labels", [1] * len(points))
    if not isinstance(labels, list) or len(labels) != len(points) or any(label not in (0, 1) for label in labels):
        raise ValueError(f"labels must be one 1 (foreground) or 0 (background) per point ({len(points)} points), "
                         f"got {labels!r}")
    box = entry.get("box")
    if box is not None and (not isinstance(box, list) or len(box) != 4 or not all(map(_is_number, box))):
        raise ValueError(f"box must be [x1, y1, x2, y2] in pixels, got {box!r}")
    if not points and box is None:
        raise ValueError("needs points or a box (or both)")
    prompt = ObjectPrompt(str(object_id), points=np.array(points, float).reshape(-1, 2), labels=np.array(labels, int),
                          box=None if box is None else np.array(box, float))
    return FileObject(prompt, frame, stamp_ns)


def _is_number(value: object) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool)


def _describe(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
