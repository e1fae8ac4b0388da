"""Named dataset builders that know each dataset's folder layout (see docs/data.md)."""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

from .bdd100k import BDD100KInstances
from .coco import CocoInstances
from .dataset import InstanceDataset
from .mask_folder import MaskFolderInstances
from .robust_seg import RobustSegInstances
from .synthetic import SyntheticInstances

ACDC_CONDITIONS = ("fog", "night", "rain", "snow")


def acdc_condition(file_name: str) -> str:
    """ACDC ``file_name`` (``fog/train/GOPR0475/…_rgb_anon.png``) -> its condition folder."""
    condition = Path(file_name).parts[0]
    if condition not in ACDC_CONDITIONS:
        raise ValueError(f"ACDC file {file_name} is not under one of {ACDC_CONDITIONS}")
    return condition


def build_coco(root: str | Path, split: str = "train", **kwargs) -> CocoInstances:
    """``root/annotations/instances_{split}2017.json`` + ``root/{split}2017/``."""
    root = Path(root)
    return CocoInstances(root / "annotations" / f"instances_{split}2017.json", root / f"{split}2017",
                         dataset="coco", condition="clear", **kwargs)


def build_lvis(root: str | Path, split: str = "train", **kwargs) -> CocoInstances:
    """``root/annotations/lvis_v1_{split}.json``; images under the COCO root ``root/{train,val}2017/``."""
    root = Path(root)
    return CocoInstances(root / "annotations" / f"lvis_v1_{split}.json", root,
                         dataset="lvis", condition="clear", **kwargs)


def build_lis(root: str | Path, split: str = "train", **kwargs) -> CocoInstances:
    """LIS low-light: ``root/annotations/lis_coco_JPG_{split}+1.json`` + ``root/RGB-dark/JPEGImages/``."""
    root = Path(root)
    return CocoInstances(root / "annotations" / f"lis_coco_JPG_{split}+1.json",
                         root / "RGB-dark" / "JPEGImages", dataset="lis", condition="night", **kwargs)


def build_acdc(root: str | Path, split: str = "train", **kwargs) -> CocoInstances:
    """ACDC: ``root/gt_detection/instancesonly_{split}_gt_detection.json`` + ``root/rgb_anon/``."""
    root = Path(root)
    return CocoInstances(root / "gt_detection" / f"instancesonly_{split}_gt_detection.json",
                         root / "rgb_anon", dataset="acdc", condition=acdc_condition, **kwargs)


def build_bdd100k(root: str | Path, split: str = "train", attributes_file: str | Path | None = None,
                  **kwargs) -> BDD100KInstances:
    """``root/images/10k/{split}/`` + ``root/labels/ins_seg/bitmasks/{split}/``; conditions from
    ``attributes_file`` or, when it exists, ``root/labels/ins_seg/polygons/ins_seg_{split}.json``."""
    root = Path(root)
    default = root / "labels" / "ins_seg" / "polygons" / f"ins_seg_{split}.json"
    if attributes_file is None and default.is_file():
        attributes_file = default
    return BDD100KInstances(root / "images" / "10k" / split, root / "labels" / "ins_seg" / "bitmasks" / split,
                            attributes_file, **kwargs)


def build_msra10k(root: str | Path, split: str = "train", **kwargs) -> MaskFolderInstances:
    """MSRA-10K: ``root/xxx.jpg`` beside ``root/xxx.png`` (no splits; ``split`` is ignored)."""
    return MaskFolderInstances(root, None, dataset="msra10k", **kwargs)


def build_thin_object_5k(root: str | Path, split: str = "train", **kwargs) -> MaskFolderInstances:
    """ThinObject-5K style: ``root/images/xxx.jpg`` + ``root/masks/xxx.png`` (``split`` is ignored)."""
    root = Path(root)
    return MaskFolderInstances(root / "images", root / "masks", dataset="thin_object_5k", **kwargs)


def build_robust_seg(root: str | Path, split: str = "train", conditions: Sequence[str] | None = None,
                     **kwargs) -> RobustSegInstances:
    """Robust-Seg: ``root/{split}/clear/``, ``root/{split}/masks/*.npy`` and one folder per corruption;
    ``conditions`` (``clear`` or ``ROBUST_SEG`` names) default to every folder present."""
    return RobustSegInstances(Path(root) / split, conditions, **kwargs)


DATASET_BUILDERS: dict[str, Callable[..., InstanceDataset]] = {
    "coco": build_coco,
    "lvis": build_lvis,
    "lis": build_lis,
    "acdc": build_acdc,
    "bdd100k": build_bdd100k,
    "msra10k": build_msra10k,
    "thin_object_5k": build_thin_object_5k,
    "robust_seg": build_robust_seg,
}


def build_dataset(name: str, root: str | Path, split: str = "train", **kwargs) -> InstanceDataset:
    """Build a dataset by its name in ``DATASET_BUILDERS``."""
    if name not in DATASET_BUILDERS:
        raise ValueError(f"name={name!r} is not one of {sorted(DATASET_BUILDERS)}")
    return DATASET_BUILDERS[name](root, split, **kwargs)


def dataset_from_spec(spec: dict) -> InstanceDataset:
    """A dataset from a config entry ``{name, ...}``: ``synthetic`` (no files needed) or a ``DATASET_BUILDERS`` name."""
    if "name" not in spec:
        raise ValueError(f"dataset entry {spec} has no 'name'")
    kwargs = {k: v for k, v in spec.items() if k != "name"}
    if spec["name"] == "synthetic":
        return SyntheticInstances(**kwargs)
    return build_dataset(spec["name"], **kwargs)
