"""The optimizer: Adam (paper) over what trains, with the gate MLPs in a parameter group of their own."""

from __future__ import annotations

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
         "lr": cfg.lr, "weight_decay": cfg.optim.weight_decay},
        {"name": "gates", "params": [p for p in trainable if id(p) in gate_ids],
         "lr": cfg.lr * cfg.optim.gate_lr_scale, "weight_decay": gate_decay},
    ]
    return [g for g in groups if g["params"]]


def build_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Adam:
    """Adam with coupled L2 weight decay (torch.optim.Adam's weight_decay), as the paper trains."""
    return torch.optim.Adam(parameter_groups(model, cfg), lr=cfg.lr)
