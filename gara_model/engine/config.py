"""Training configuration: dataclass defaults (the paper's settings), then a YAML file, then dotted overrides."""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field

from gara_model.config import GaraConfig


@dataclass
class ModelConfig:
    sam: str = field(default="tiny", metadata={"help": "SAM variant: vit_b | vit_l | vit_h | tiny"})
    checkpoint: str | None = field(default=None, metadata={"help": "SAM weights; None with tiny = the embedded model"})
    train_base: bool = field(default=False, metadata={"help": "train all of SAM (no adapters): how the tiny base is made"})
    train_only: str | None = field(default=None, metadata={"help": "with train_base: train only this submodule, e.g. mask_decoder.iou_prediction_head"})
    image_size: int | None = field(default=None, metadata={"help": "encoder input size (multiple of the patch size); None = native"})
    scaling: str = field(default="none", metadata={"help": "none | basam (BA-SAM scale and bias-mode mask, trained with the adapters)"})


def _robust_seg() -> list[str]:
    from gara_model.data.corruptions import ROBUST_SEG  # imported late: it loads the image libraries

    return list(ROBUST_SEG)


def _eval_corruptions() -> list[str]:
    from gara_model.data.corruptions import EVAL_CORRUPTIONS  # imported late: it loads the image libraries

    return list(EVAL_CORRUPTIONS)


@dataclass
class DataConfig:
    train: list = field(default_factory=lambda: [{"name": "synthetic", "size": 4000, "seed": 0}],
                        metadata={"help": "datasets, each {name, root, split, ...} for gara_model.data.build_dataset"})
    corruptions: list = field(default_factory=_robust_seg,
                              metadata={"help": "corruptions drawn per training image (default: the 15 Robust-Seg ones); [] = as is"})
    corruption_severity: int | None = field(default=None, metadata={"help": "ImageNet-C severity (None = random 1-5)"})
    clear_fraction: float = field(default=0.5, metadata={"help": "share of training draws left as they are (no corruption); "
                                                                "gara: 1/2, keeps clear IoU (docs/model.md); paper: 1/16, "
                                                                "Robust-Seg holds each image clear beside its 15 degraded copies"})
    eval: list = field(default_factory=lambda: [{"name": "synthetic", "size": 100, "seed": 10_000}])
    eval_corruptions: list = field(default_factory=_eval_corruptions,
                                   metadata={"help": "applied to clear eval images (default: data.corruptions.EVAL_CORRUPTIONS)"})
    eval_severity: int = 3
    max_objects: int = field(default=4, metadata={"help": "objects per image and step"})
    prompt_mode: str = field(default="mix", metadata={"help": "points | box | both | mix"})
    points_per_object: int = 3
    box_jitter: float = 0.1
    num_workers: int = 1

    def __post_init__(self) -> None:
        from gara_model.data.corruptions import CORRUPTIONS  # imported late: it loads the image libraries

        if not 0.0 <= self.clear_fraction <= 1.0:
            raise ValueError(f"data.clear_fraction must be in [0, 1], got {self.clear_fraction}")
        for key in ("corruptions", "eval_corruptions"):
            unknown = [name for name in getattr(self, key) if name not in CORRUPTIONS]
            if unknown:
                raise ValueError(f"data.{key}: unknown corruptions {unknown}; valid: {', '.join(CORRUPTIONS)}")


LR_SCHEDULES = ("constant", "cosine")


@dataclass
class OptimConfig:
    """Adam as in the paper (lr, coupled weight decay 1e-5 on the components). gara's recipe departs from the paper's
    text in two named fields, each with the paper's value available: gate_weight_decay 0 (coupled decay out-weighs
    the tiny loss gradient that reaches the gate MLPs and zeroes them) and schedule cosine (docs/model.md)."""

    lr: float | None = field(default=None, metadata={"help": "None: 1e-4 for vit_b, 1e-5 for vit_l/vit_h (paper), 1e-3 tiny"})
    weight_decay: float = field(default=1e-5, metadata={"help": "Adam's (coupled) L2 weight decay, paper 1e-5"})
    gate_weight_decay: float | None = field(default=0.0, metadata={"help": "weight decay of the gate MLPs; None = weight_decay "
                                                                        "(the paper's single Adam); 0: gara's recipe (docs/model.md)"})
    gate_lr_scale: float = field(default=1.0, metadata={"help": "gate MLPs learn at lr x this (paper: 1)"})
    schedule: str = field(default="cosine", metadata={"help": "learning rate over the run: constant (the paper states no "
                                                              "schedule) | cosine (to 0 at the last step; gara's recipe)"})
    warmup_steps: int = field(default=0, metadata={"help": "steps of linear warm-up from 0 before the schedule"})

    def __post_init__(self) -> None:
        if self.schedule not in LR_SCHEDULES:
            raise ValueError(f"optim.schedule must be one of {LR_SCHEDULES}, got {self.schedule!r}")
        if self.warmup_steps < 0:
            raise ValueError(f"optim.warmup_steps must be >= 0, got {self.warmup_steps}")
    grad_clip: float = 1.0
    focal_weight: float = 20.0
    dice_weight: float = 1.0
    iou_weight: float = field(default=0.0, metadata={"help": "SAM's IoU-head MSE; 0 = GaRA's loss (focal + dice only)"})


@dataclass
class TrainConfig:
    """Everything a training run needs. Defaults: the paper's settings on the embedded tiny model and synthetic data."""

    model: ModelConfig = field(default_factory=ModelConfig)
    adapter: GaraConfig = field(default_factory=GaraConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    steps: int = 300
    batch_size: int = 8
    save_every: int = 100
    log_every: int = 10
    probe_every: int = field(default=50, metadata={"help": "steps between the eval-mode gate statistics on a fixed probe batch (TensorBoard)"})
    seed: int = 0
    device: str = "auto"
    precision: str = "auto"
    output_dir: str = "runs/gara"
    resume: bool = False
    overwrite: bool = field(default=False, metadata={
        "help": "start afresh in an output_dir that holds a checkpoint, deleting it; without this (or resume) such a "
                "run is refused"})
    evaluate: bool = True

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "save_every", "log_every", "probe_every"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.resume and self.overwrite:
            raise ValueError("resume and overwrite exclude each other: continue the run in output_dir, or start afresh")

    @property
    def lr(self) -> float:
        if self.optim.lr is not None:
            return self.optim.lr
        return {"vit_b": 1e-4, "tiny": 1e-3}.get(self.model.sam, 1e-5)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _from_dict(cls, values: dict, where: str):
    """A (nested) config dataclass from a plain dict; unknown keys are an error naming them."""
    if not isinstance(values, dict):
        raise ValueError(f"{where or 'config'} must be a mapping, got {values!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(values) - set(fields)
    if unknown:
        raise ValueError(f"unknown config keys {sorted(f'{where}{k}' for k in unknown)}")
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for name, value in values.items():
        nested = _NESTED.get((cls, name))
        kwargs[name] = _from_dict(nested, value, f"{where}{name}.") if nested else _coerce(value, hints[name], where + name)
    return cls(**kwargs)


def _coerce(value, hint, key: str):
    """YAML reads 2e-4 as a string (no dot): numbers are converted to the field's declared number type."""
    types = typing.get_args(hint) or (hint,)
    for number in (int, float):
        if number in types and isinstance(value, (str, int, float)) and not isinstance(value, bool) and not isinstance(value, number):
            try:
                converted = float(value)
            except ValueError:
                raise ValueError(f"{key} must be a number, got {value!r}") from None
            if number is int and not converted.is_integer():
                raise ValueError(f"{key} must be a whole number, got {value!r}")
            return number(converted)
    return value


_NESTED = {(TrainConfig, "model"): ModelConfig, (TrainConfig, "adapter"): GaraConfig,
           (TrainConfig, "data"): DataConfig, (TrainConfig, "optim"): OptimConfig}


def load_train_config(path: str | None = None, overrides: list[str] = ()) -> TrainConfig:
    """Defaults, then the YAML file, then `key.sub=value` overrides (values parsed as YAML)."""
    import yaml

    values: dict = {}
    if path is not None:
        with open(path) as f:
            values = yaml.safe_load(f) or {}
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep:
            raise ValueError(f"override {item!r} must look like key.sub=value")
        node = values
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = yaml.safe_load(raw)
    return _from_dict(TrainConfig, values, "")
