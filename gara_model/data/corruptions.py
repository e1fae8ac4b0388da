"""Image corruptions: the 15 Robust-Seg degradations and ImageNet-C (severities 1-5).

Robust-Seg names follow RobustSAM's ``data/augment.py`` (one fixed strength each,
its settings ported to albumentations 2.0; see docs/data.md for where they differ).
ImageNet-C names are ``imagenet_c/<name>`` and run the ``imagecorruptions`` package.
All take and return H x W x 3 uint8 RGB; the same seed gives the same output.
"""
from __future__ import annotations

import contextlib
from typing import Callable, Iterator

import albumentations as A
import cv2
import imagecorruptions
import numpy as np

_LINEAR = {"downscale": cv2.INTER_LINEAR, "upscale": cv2.INTER_LINEAR}


def _frosted_glass_blur(image: np.ndarray, rng: np.random.Generator, max_displacement: int = 3) -> np.ndarray:
    """Each pixel takes the value of a random neighbour up to ``max_displacement`` px away."""
    height, width = image.shape[:2]
    dy, dx = rng.integers(-max_displacement, max_displacement + 1, size=(2, height, width))
    rows = np.clip(np.arange(height)[:, None] + dy, 0, height - 1)
    cols = np.clip(np.arange(width)[None, :] + dx, 0, width - 1)
    return image[rows, cols]


#: Robust-Seg degradation -> albumentations transform factory (all with p=1).
_ALBUMENTATIONS: dict[str, Callable[[], A.BasicTransform]] = {
    "snow": lambda: A.Compose([  # bleached snow cover, then white flakes (RobustSAM: imgaug Snowflakes)
        A.RandomSnow(snow_point_range=(0.3, 0.7), brightness_coeff=1.5, method="bleach", p=1),
        A.RandomRain(slant_range=(-5, 5), drop_length=3, drop_width=2, drop_color=(255, 255, 255),
                     blur_value=3, brightness_coefficient=1.0, p=1)]),
    "fog": lambda: A.RandomFog(fog_coef_range=(0.3, 0.45), alpha_coef=0.08, p=1),
    "rain": lambda: A.RandomRain(slant_range=(-10, 10), rain_type="heavy", brightness_coefficient=0.8, p=1),
    "gauss_noise": lambda: A.GaussNoise(std_range=(250 ** 0.5 / 255, 260 ** 0.5 / 255), per_channel=True, p=1),
    "iso_noise": lambda: A.ISONoise(color_shift=(0.4, 0.5), intensity=(0.7, 0.8), p=1),
    "impulse_noise": lambda: A.MultiplicativeNoise(multiplier=(1.4, 1.5), p=1),
    "resampling_blur": lambda: A.Downscale(scale_range=(0.25, 0.25), interpolation_pair=_LINEAR, p=1),
    "motion_blur": lambda: A.MotionBlur(blur_limit=(3, 35), p=1),
    "zoom_blur": lambda: A.ZoomBlur(max_factor=(1.0, 1.33), step_factor=(0.05, 0.07), p=1),
    "color_jitter": lambda: A.ColorJitter(brightness=0.7, contrast=0.3, saturation=0.7, hue=0.5, p=1),
    "compression": lambda: A.ImageCompression(compression_type="jpeg", quality_range=(5, 10), p=1),
    "elastic_transform": lambda: A.ElasticTransform(alpha=100, sigma=10, border_mode=cv2.BORDER_REFLECT_101, p=1),
    "brightness": lambda: A.MultiplicativeNoise(multiplier=(0.6, 0.8), p=1),
    "contrast": lambda: A.ColorJitter(brightness=0, contrast=(1.6, 1.7), saturation=0, hue=0, p=1),
    "night": lambda: A.Compose([  # low light as a camera sees it: dark midtones, then sensor read noise
        A.RandomGamma(gamma_limit=(250, 350), p=1),
        A.GaussNoise(std_range=(0.03, 0.06), per_channel=True, p=1)]),
}

#: The 15 Robust-Seg degradations, in RobustSAM's order.
ROBUST_SEG = ("snow", "fog", "rain", "gauss_noise", "iso_noise", "impulse_noise", "resampling_blur",
              "motion_blur", "zoom_blur", "color_jitter", "compression", "elastic_transform",
              "frosted_glass_blur", "brightness", "contrast")

#: ImageNet-C: 15 common + 4 validation corruptions.
IMAGENET_C = tuple(f"imagenet_c/{name}" for name in imagecorruptions.get_corruption_names("all"))

#: gara's own: the low light of a robot's camera at night (the paper's real night images: ACDC, LIS, BDD100K).
LOW_LIGHT = ("night",)

CORRUPTIONS = ROBUST_SEG + IMAGENET_C + LOW_LIGHT

#: The default evaluation conditions (training's evaluation, the evaluate command, the small-scale reproduction):
#: weather, blur, compression, noise, low contrast and darkness; each costs the embedded tiny SAM at least 0.08 IoU
#: with a point prompt (ImageNet-C ones at severity 3).
EVAL_CORRUPTIONS = ("snow", "motion_blur", "compression", "imagenet_c/contrast", "imagenet_c/fog",
                    "imagenet_c/gaussian_noise", "night")
SEVERITIES = (1, 2, 3, 4, 5)
DEFAULT_SEVERITY = 3
_SEEDED_IMAGENET_C = ("impulse_noise", "glass_blur")  # take a seed argument; others use np.random


@contextlib.contextmanager
def _numpy_global_seed(seed: int) -> Iterator[None]:
    """Seed numpy's global RNG (imagecorruptions uses it) and restore its state afterwards."""
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(state)


def _imagenet_c(image: np.ndarray, name: str, severity: int, seed: int) -> np.ndarray:
    kwargs = {"seed": seed} if name in _SEEDED_IMAGENET_C else {}
    with _numpy_global_seed(seed):
        return imagecorruptions.corrupt(image, severity=severity, corruption_name=name, **kwargs)


def corruption_severity(name: str, severity: int | None) -> int | None:
    """The severity to pass to ``corrupt``: ``severity`` for ImageNet-C names, None for the fixed-strength others."""
    return severity if name in IMAGENET_C else None


def _check(image: np.ndarray, name: str, severity: int | None) -> None:
    if name not in CORRUPTIONS:
        raise ValueError(f"name={name!r} is not a corruption; valid names: {', '.join(CORRUPTIONS)}")
    if name not in IMAGENET_C and severity is not None:
        raise ValueError(f"severity={severity!r}: corruption {name!r} has one fixed strength; pass None")
    if name in IMAGENET_C and severity is not None and severity not in SEVERITIES:
        raise ValueError(f"severity={severity!r} must be one of {SEVERITIES} (or None for {DEFAULT_SEVERITY})")
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"image must be H x W x 3 uint8, got {image.shape} {image.dtype}")
    if name in IMAGENET_C and min(image.shape[:2]) < 32:
        raise ValueError(f"image {image.shape[:2]} is too small: ImageNet-C needs at least 32 x 32")


def corrupt(image: np.ndarray, name: str, severity: int | None = None, seed: int | None = None) -> np.ndarray:
    """Apply corruption ``name`` to an H x W x 3 uint8 RGB image; returns the same shape and dtype.

    Args:
        name: one of ``CORRUPTIONS``.
        severity: None for Robust-Seg names; 1-5 for ``imagenet_c/*`` (None means 3).
        seed: same seed -> identical output; None draws fresh randomness.
    """
    _check(image, name, severity)
    seed = int(np.random.SeedSequence(seed).generate_state(1)[0]) if seed is None else int(seed) % 2 ** 32
    image = np.ascontiguousarray(image)
    if name in IMAGENET_C:
        out = _imagenet_c(image, name.split("/", 1)[1], severity or DEFAULT_SEVERITY, seed)
    elif name == "frosted_glass_blur":
        out = _frosted_glass_blur(image, np.random.default_rng(seed))
    else:
        out = A.Compose([_ALBUMENTATIONS[name]()], seed=seed)(image=image)["image"]
    return np.ascontiguousarray(out, dtype=np.uint8).reshape(image.shape)
