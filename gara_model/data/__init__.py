"""Datasets, corruptions and prompts for GaRA-SAM training and evaluation (no rclpy)."""
from .bdd100k import BDD100KInstances, bdd100k_condition, decode_bitmask
from .build import DATASET_BUILDERS, acdc_condition, build_dataset
from .coco import CocoInstances
from .dataset import InstanceDataset
from .errors import BadDataError
from .mask_folder import MaskFolderInstances
from .sample import CONDITIONS, InstanceSample

__all__ = [
    "BDD100KInstances", "BadDataError", "CONDITIONS", "CocoInstances", "DATASET_BUILDERS", "InstanceDataset",
    "InstanceSample", "MaskFolderInstances", "acdc_condition", "bdd100k_condition", "build_dataset",
    "decode_bitmask",
]
