"""Decoding image and mask files; a file that does not decode fully raises BadDataError."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from .errors import BadDataError


def _open(path: str | Path) -> Image.Image:
    """Open and fully decode ``path`` (a truncated file raises instead of padding)."""
    if not Path(path).is_file():
        raise BadDataError(path, "file missing")
    try:
        with Image.open(path) as image:
            image.load()
            return image.copy()
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        raise BadDataError(path, f"cannot decode ({error})") from error


def read_rgb(path: str | Path) -> np.ndarray:
    """Image file -> H x W x 3 uint8 RGB (pixels as stored; EXIF orientation is not applied)."""
    return np.asarray(_open(path).convert("RGB"), dtype=np.uint8)


def read_rgba(path: str | Path) -> np.ndarray:
    """RGBA PNG -> H x W x 4 uint8, channel values exactly as stored."""
    image = _open(path)
    if image.mode != "RGBA":
        raise BadDataError(path, f"expected an RGBA image, got mode {image.mode}")
    return np.asarray(image, dtype=np.uint8)


def read_binary_mask(path: str | Path) -> np.ndarray:
    """Mask PNG -> H x W bool.

    Palette images: index != 0 is foreground. Others: grey level > 127, or
    != 0 when the mask only holds 0 and 1.
    """
    image = _open(path)
    if image.mode == "P":
        return np.asarray(image) != 0
    grey = np.asarray(image.convert("L"))
    return grey > (0 if grey.max() <= 1 else 127)
