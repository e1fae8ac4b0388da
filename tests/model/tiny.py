"""Tiny GaRA-SAM helpers shared by the model tests."""

import copy

import torch

from gara_model.adapters import GatedRankAdapter
from gara_model.config import GaraConfig
from gara_model.modeling import inject_adapters

VARIANT_CONFIGS = {
    "gara": GaraConfig(variant="gara", ranks=(4, 12), gate_hidden_dim=16),
    "gara_unified": GaraConfig(variant="gara_unified", ranks=(12,), gate_hidden_dim=16),
    "lora": GaraConfig(variant="lora", ranks=(8,)),
    "moe_lora": GaraConfig(variant="moe_lora", ranks=(3, 3, 3), gate_hidden_dim=16),
}


def randomize_adapters(model: torch.nn.Module, seed: int = 0, scale: float = 0.05) -> None:
    """Non-zero B (a fresh adapter is a no-op), so that tests of the update are not trivial."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, GatedRankAdapter):
                module.lora_B.copy_(torch.randn(module.lora_B.shape, generator=generator) * scale)


def make_gara(sam, config=VARIANT_CONFIGS["gara"], seed=0, randomize=True):
    """A copy of `sam` with adapters (non-zero unless randomize=False), in eval mode."""
    model = inject_adapters(copy.deepcopy(sam), config)
    if randomize:
        randomize_adapters(model, seed)
    return model.eval()
