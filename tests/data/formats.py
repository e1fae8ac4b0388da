"""Writers of small files in the real on-disk formats (COCO JSON, BDD100K bitmasks, mask folders)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image
from pycocotools import mask as mask_utils

H, W = 40, 50


def write_image(path: Path, height: int = H, width: int = W, seed: int = 0) -> np.ndarray:
    """Random RGB image saved as JPEG or PNG (by suffix); returns the pixels written."""
    pixels = (np.random.default_rng(seed).random((height, width, 3)) * 255).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path, format="PNG" if path.suffix.lower() == ".png" else "JPEG")
    return pixels


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def rle_mask() -> np.ndarray:
    mask = np.zeros((H, W), dtype=bool)
    mask[5:15, 20:32] = True
    mask[6, 40] = True
    return mask


def compressed_rle(mask: np.ndarray) -> dict:
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": rle["size"], "counts": rle["counts"].decode("ascii")}


def uncompressed_rle(mask: np.ndarray) -> dict:
    """COCO's uncompressed RLE: column-major run lengths starting with a background run."""
    flat = mask.T.ravel().astype(np.int8)
    changes = np.flatnonzero(np.diff(np.concatenate([[0], flat, [1 - flat[-1]]])))
    return {"size": [H, W], "counts": np.diff(np.concatenate([[0], changes])).tolist()}


POLYGON = [[10.0, 20.0, 30.0, 20.0, 30.0, 35.0, 10.0, 35.0]]  # x 10..30, y 20..35


def coco_json(path: Path, file_names: list[str], extra_annotations: list[dict] | None = None) -> Path:
    """One compressed-RLE and one polygon annotation on the first image, one RLE on the others."""
    images = [{"id": i + 1, "file_name": name, "height": H, "width": W} for i, name in enumerate(file_names)]
    annotations = [
        {"id": 1, "image_id": 1, "category_id": 3, "iscrowd": 0, "segmentation": compressed_rle(rle_mask())},
        {"id": 2, "image_id": 1, "category_id": 5, "iscrowd": 0, "segmentation": POLYGON},
    ] + [{"id": 10 + i, "image_id": i + 1, "category_id": 1, "iscrowd": 0,
          "segmentation": compressed_rle(rle_mask())} for i in range(1, len(file_names))]
    data = {"images": images, "annotations": annotations + (extra_annotations or []),
            "categories": [{"id": c, "name": f"c{c}"} for c in (1, 3, 5)]}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return path


ACDC_FILES = ["fog/train/GOPR0475/GOPR0475_frame_000041_rgb_anon.png",
              "night/train/GOPR0351/GOPR0351_frame_000159_rgb_anon.png"]


def bitmask(instances: list[tuple[tuple[slice, slice], int, int, int]]) -> np.ndarray:
    """H x W x 4 BDD100K bitmask from (region, category, flags, instance id)."""
    rgba = np.zeros((H, W, 4), dtype=np.uint8)
    for region, category, flags, instance_id in instances:
        rgba[region] = (category, flags, instance_id >> 8, instance_id & 255)
    return rgba


BDD_INSTANCES = [  # car; occluded pedestrian with an id > 255; crowd; ignore
    ((slice(2, 10), slice(3, 12)), 3, 0, 1),
    ((slice(20, 30), slice(5, 9)), 1, 4, 258),
    ((slice(30, 38), slice(30, 45)), 1, 2, 3),
    ((slice(12, 16), slice(40, 48)), 8, 1, 4),
]

BDD_FRAMES = [
    {"name": "night-frame.jpg", "attributes": {"weather": "clear", "timeofday": "night", "scene": "highway"},
     "labels": []},
    {"name": "rainy-frame.jpg", "attributes": {"weather": "rainy", "timeofday": "daytime", "scene": "city street"},
     "labels": []},
]


def write_bdd(root: Path, frames: object = BDD_FRAMES) -> Path:
    """BDD100K layout: three images with ``BDD_INSTANCES`` bitmasks; ``frames`` is written as the
    attributes JSON (``labels/ins_seg/polygons/ins_seg_train.json``); "no-attributes" is not in it."""
    for i, name in enumerate(["night-frame", "rainy-frame", "no-attributes"]):
        write_image(root / "images" / "10k" / "train" / f"{name}.jpg", seed=i)
        path = root / "labels" / "ins_seg" / "bitmasks" / "train" / f"{name}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(bitmask(BDD_INSTANCES)).save(path)
    polygons = root / "labels" / "ins_seg" / "polygons" / "ins_seg_train.json"
    polygons.parent.mkdir(parents=True)
    polygons.write_text(json.dumps(frames))
    return root


def binary_png(path: Path, mask: np.ndarray, mode: str = "L") -> None:
    """Save a bool mask as 0/255 grey ("L"), 0/1 grey ("L01") or a 0/1 palette PNG ("P")."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if mode == "P":
        image = Image.frombytes("P", mask.shape[::-1], mask.astype(np.uint8).tobytes())
        image.putpalette([0, 0, 0, 128, 0, 0])
    else:
        image = Image.fromarray(mask.astype(np.uint8) * (1 if mode == "L01" else 255))
    image.save(path, format="PNG")


def robust_seg_split(split_dir: Path, folders: tuple[str, ...], count: int = 2) -> list[np.ndarray]:
    """Robust-Seg (RobustSAM) layout: ``<folder>/img_<i>.jpg`` in every folder (pixels differ per
    folder) and ``masks/mask_<i>.npy`` (2 x H x W bool, paired with the images by sorted order).
    Returns the masks written, in sorted order."""
    written = []
    for i in range(count):
        for seed, folder in enumerate(folders):
            write_image(split_dir / folder / f"img_{i:04d}.jpg", seed=10 * i + seed)
        masks = np.zeros((2, H, W), dtype=bool)
        masks[0, 2 + i:12 + i, 3:20] = True
        masks[1, 25:35, 30 - i:45] = True
        (split_dir / "masks").mkdir(parents=True, exist_ok=True)
        np.save(split_dir / "masks" / f"mask_{i:04d}.npy", masks)
        written.append(masks)
    return written
