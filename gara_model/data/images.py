"""Decoding image and mask files; a file that does not decode fully raises BadDataError."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from .errors import BadDataError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")


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


def _is_16_bit_grey(image: Image.Image) -> bool:
    """Pillow opens 16-bit grey PNG/TIFF as mode ``I;16`` (``I;16B``, ``I;16L``) or ``I``."""
    return image.mode.startswith("I")


def _grey_16_to_8(image: Image.Image, path: str | Path) -> Image.Image:
    """16-bit grey -> 8-bit ``L`` by the high byte (``v >> 8``), the rule Pillow applies to 16-bit RGB."""
    levels = np.asarray(image).astype(np.int64)
    if levels.min() < 0 or levels.max() > 65535:
        raise BadDataError(path, f"grey levels {levels.min()}..{levels.max()} are not 16-bit")
    return Image.fromarray((levels >> 8).astype(np.uint8), mode="L")


def read_rgb(path: str | Path) -> np.ndarray:
    """Image file -> H x W x 3 uint8 RGB (pixels as stored; EXIF orientation is not applied).

    16-bit files keep their high byte (16-bit RGB as Pillow decodes it, 16-bit grey likewise)."""
    image = _open(path)
    if _is_16_bit_grey(image):
        image = _grey_16_to_8(image, path)
    elif image.mode == "F":
        raise BadDataError(path, "floating-point image: expected 8- or 16-bit")
    return np.asarray(image.convert("RGB"), dtype=np.uint8)


def read_rgba(path: str | Path) -> np.ndarray:
    """RGBA PNG -> H x W x 4 uint8, channel values exactly as stored."""
    image = _open(path)
    if image.mode != "RGBA":
        raise BadDataError(path, f"expected an RGBA image, got mode {image.mode}")
    return np.asarray(image, dtype=np.uint8)


def _mask_levels(image: Image.Image, path: str | Path) -> np.ndarray:
    """Grey levels of a non-palette mask (H x W, any bit depth); colour or transparent masks raise."""
    bands = image.getbands()
    if "A" in bands and (np.asarray(image.getchannel("A")) < 255).any():
        raise BadDataError(path, "mask has transparency (alpha below 255): expected an opaque greyscale or "
                                 "palette mask")
    if bands[:3] == ("R", "G", "B"):
        rgb = np.asarray(image.convert("RGB"))
        colours = np.unique(rgb[(rgb != rgb[..., :1]).any(axis=2)], axis=0)
        if len(colours):
            example = tuple(int(c) for c in colours[0])
            raise BadDataError(path, f"colour mask ({len(colours)} non-grey colour{'s' * (len(colours) > 1)}, e.g. "
                                     f"RGB {example}): expected a greyscale or palette mask")
        return rgb[..., 0]
    if bands[0] in ("L", "1"):
        return np.asarray(image.getchannel(0).convert("L"))
    if _is_16_bit_grey(image):
        return np.asarray(image).astype(np.int64)
    raise BadDataError(path, f"mask in mode {image.mode}: expected a greyscale or palette mask")


def read_binary_mask(path: str | Path) -> np.ndarray:
    """Mask PNG -> H x W bool with at least one foreground pixel.

    Palette images: index != 0 is foreground. Greyscale (8- or 16-bit; RGB with equal
    channels counts as grey): a pixel is foreground when its level is above half the mask's
    brightest level, so 0/255 and 0/1 masks read exactly and anti-aliased edges split at half
    intensity. Colour or transparent masks and masks with no pixel above 0 raise BadDataError.
    """
    image = _open(path)
    if image.mode == "P":
        mask = np.asarray(image) != 0
        if not mask.any():
            raise BadDataError(path, "empty mask (every palette index is 0)")
        return mask
    levels = _mask_levels(image, path)
    brightest = int(levels.max())
    if brightest == 0:
        raise BadDataError(path, "empty mask (every pixel is 0)")
    return 2 * levels.astype(np.int64) > brightest


def read_mask_stack(path: str | Path) -> np.ndarray:
    """``.npy`` file of instance masks -> N x H x W bool, as stored (RobustSAM's mask format).

    Pickled (object) arrays are refused, not loaded; other shapes or dtypes raise BadDataError."""
    if not Path(path).is_file():
        raise BadDataError(path, "file missing")
    try:
        masks = np.load(path, allow_pickle=False)
    except ValueError as error:
        if "allow_pickle" in str(error):
            raise BadDataError(path, "object array (pickled .npy), not loaded: expected an N x H x W bool "
                                     "array") from error
        raise BadDataError(path, f"cannot read .npy ({error})") from error
    except (OSError, EOFError) as error:
        raise BadDataError(path, f"cannot read .npy ({error})") from error
    if not isinstance(masks, np.ndarray):  # an .npz archive under an .npy name
        raise BadDataError(path, "not a single .npy array: expected an N x H x W bool array")
    if masks.ndim != 3 or masks.dtype != np.bool_:
        raise BadDataError(path, f"expected an N x H x W bool array, got shape {masks.shape} {masks.dtype}")
    return masks
