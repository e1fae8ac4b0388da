"""Tiny GaRA-SAM helpers shared by the model tests (fixtures are in conftest.py)."""

import copy

import torch

from gara_model.adapters import GatedRankAdapter
from gara_model.adapters.variants import GateVariant
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


def sam_outputs(model, images):
    """Sam.forward on a batch with a point prompt and a box prompt per image: every output it has."""
    batched = [
        {
            "image": image,
            "original_size": (128, 128),
            "point_coords": torch.tensor([[[30.0, 40.0], [90.0, 70.0]]]),
            "point_labels": torch.tensor([[1, 0]]),
            "boxes": torch.tensor([[10.0, 20.0, 100.0, 110.0]]),
        }
        for image in images
    ]
    return model(batched, multimask_output=True)


def spread_gates(model: torch.nn.Module, seed: int = 0) -> None:
    """Random gate-MLP biases, so that adapters decide differently (fresh gates tend to agree)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for gate in model.modules():
            if isinstance(gate, GateVariant):
                for layer in gate.modules():
                    if isinstance(layer, torch.nn.Linear):
                        layer.bias.copy_(torch.randn(layer.bias.shape, generator=generator) * 2)


def gate_outputs(model: torch.nn.Module, run) -> list:
    """The `Gates` every gate of `model` returns while run() runs, taken by hooks of our own (not record_gates)."""
    outputs = []
    handles = [m.register_forward_hook(lambda _m, _i, out: outputs.append(out))
               for m in model.modules() if isinstance(m, GateVariant)]
    try:
        run()
    finally:
        for handle in handles:
            handle.remove()
    return outputs


def image_dependent_rank_sets(model: torch.nn.Module) -> None:
    """GaRA's rank-set gates without biases: each decision is then a function of the image's f(x) alone, so that
    different images take different rank sets (with biases, fresh gates mostly decide by their biases)."""
    from gara_model.adapters.variants import GatedRank

    with torch.no_grad():
        for gate in model.modules():
            if isinstance(gate, GatedRank):
                for layer in gate.rank_space_gate:
                    if isinstance(layer, torch.nn.Linear):
                        layer.bias.zero_()
