"""Render every corruption on one synthetic scene as a labelled grid.

    python -m gara_model.data.contact_sheet --out docs/images/corruptions.png
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from .corruptions import CORRUPTIONS, corrupt, corruption_severity
from .synthetic import render_scene

_LABEL_HEIGHT = 16


def _tile(image: np.ndarray, label: str) -> np.ndarray:
    """Image with ``label`` written in a white strip above it."""
    strip = np.full((_LABEL_HEIGHT, image.shape[1], 3), 255, dtype=np.uint8)
    cv2.putText(strip, label, (3, 12), cv2.FONT_HERSHEY_SIMPLEX, 0.36, (0, 0, 0), 1, cv2.LINE_AA)
    return np.concatenate([strip, image])


def contact_sheet(image: np.ndarray, names: Sequence[str] = CORRUPTIONS, severity: int = 3,
                  seed: int = 0, columns: int = 6) -> np.ndarray:
    """H x W x 3 uint8 image -> grid of the clean image then each corruption (uint8 RGB)."""
    if columns < 1:
        raise ValueError(f"columns={columns} must be >= 1")
    tiles = [_tile(image, "clear")]
    for name in names:
        level = corruption_severity(name, severity)
        label = f"{name.replace('imagenet_c/', 'IN-C ')}" + (f" s{level}" if level else "")
        tiles.append(_tile(corrupt(image, name, level, seed), label))
    tiles += [np.full_like(tiles[0], 255)] * (-len(tiles) % columns)
    rows = [np.concatenate(tiles[i:i + columns], axis=1) for i in range(0, len(tiles), columns)]
    return np.concatenate(rows)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="PNG to write")
    parser.add_argument("--size", type=int, default=144, help="scene size in pixels")
    parser.add_argument("--severity", type=int, default=3, help="ImageNet-C severity (1-5)")
    parser.add_argument("--seed", type=int, default=0, help="scene and corruption seed")
    args = parser.parse_args(argv)
    scene = render_scene(np.random.default_rng(args.seed), args.size, (4, 4))
    sheet = contact_sheet(scene.image, severity=args.severity, seed=args.seed)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(args.out), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 9]):
        raise OSError(f"could not write {args.out}")
    print(f"wrote {args.out} ({sheet.shape[1]} x {sheet.shape[0]})")


if __name__ == "__main__":
    main()
