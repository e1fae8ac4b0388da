"""The optimizer: Adam (paper) over what trains, with the gate MLPs in a parameter group of their own."""

from __future__ import annotations

import math

import torch
from torch import nn

from gara_model.adapters.variants import GateVariant
from gara_model.engine.config import TrainConfig


def parameter_groups(model: nn.Module, cfg: TrainConfig) -> list[dict]:
    """[everything else that trains, the gate MLPs]: the gates take lr x optim.gate_lr_scale and
    optim.gate_weight_decay (None: optim.weight_decay, as the paper's single Adam); empty groups are left out."""
    gate_ids = {id(p) for m in model.modules() if isinstance(m, GateVariant) for p in m.parameters()}
    trainable = [p for p in model.parameters() if p.requires_grad]
    gate_decay = cfg.optim.weight_decay if cfg.optim.gate_weight_decay is None else cfg.optim.gate_weight_decay
    groups = [
        {"name": "adapters", "params": [p for p in trainable if id(p) not in gate_ids],
         "lr": cfg.lr, "base_lr": cfg.lr, "weight_decay": cfg.optim.weight_decay},
        {"name": "gates", "params": [p for p in trainable if id(p) in gate_ids],
         "lr": cfg.lr * cfg.optim.gate_lr_scale, "base_lr": cfg.lr * cfg.optim.gate_lr_scale, "weight_decay": gate_decay},
    ]
    return [g for g in groups if g["params"]]


def build_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Adam:
    """Adam with coupled L2 weight decay (torch.optim.Adam's weight_decay), as the paper trains."""
    return torch.optim.Adam(parameter_groups(model, cfg), lr=cfg.lr)


def learning_rate_factor(step: int, cfg: TrainConfig) -> float:
    """The share of each group's base lr at `step` (0-based): linear warm-up over optim.warmup_steps, then constant
    (paper) or a cosine from 1 down to 0 at the last step."""
    warmup = cfg.optim.warmup_steps
    if step < warmup:
        return (step + 1) / warmup
    if cfg.optim.schedule == "constant":
        return 1.0
    progress = (step - warmup) / max(cfg.steps - warmup, 1)
    return 0.5 * (1 + math.cos(math.pi * progress))


def set_learning_rate(optimizer: torch.optim.Optimizer, step: int, cfg: TrainConfig) -> None:
    """Sets every group's lr for `step` from its base lr; a function of the step alone, so a resumed run follows the
    same schedule."""
    factor = learning_rate_factor(step, cfg)
    for group in optimizer.param_groups:
        group["lr"] = group["base_lr"] * factor
