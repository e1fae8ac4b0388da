"""Datasets, corruptions and prompts for GaRA-SAM training and evaluation (no rclpy)."""
from .bdd100k import BDD100KInstances, bdd100k_condition, decode_bitmask
from .build import DATASET_BUILDERS, acdc_condition, build_dataset
from .coco import CocoInstances
from .corrupted import CorruptionMix
from .corruptions import CORRUPTIONS, IMAGENET_C, LOW_LIGHT, ROBUST_SEG, corrupt
from .dataset import InstanceDataset
from .errors import BadDataError
from .mask_folder import MaskFolderInstances
from .prompts import EVAL_PROTOCOL, Prompts, eval_prompts, training_prompts
from .robust_seg import ROBUST_SEG_CONDITIONS, RobustSegInstances
from .sample import CONDITIONS, InstanceSample
from .synthetic import SyntheticInstances, render_scene

__all__ = [
    "BDD100KInstances", "BadDataError", "CONDITIONS", "CORRUPTIONS", "CocoInstances", "CorruptionMix",
    "DATASET_BUILDERS", "EVAL_PROTOCOL", "IMAGENET_C", "InstanceDataset", "InstanceSample", "LOW_LIGHT",
    "MaskFolderInstances", "Prompts", "ROBUST_SEG", "ROBUST_SEG_CONDITIONS", "RobustSegInstances",
    "SyntheticInstances", "acdc_condition", "bdd100k_condition", "build_dataset", "corrupt", "decode_bitmask",
    "eval_prompts", "render_scene", "training_prompts",
]
