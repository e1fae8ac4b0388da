"""The adapter layer against the paper's update rule, eq. 2-7, for every variant."""

import pytest
import torch
from torch import nn

from gara_model.adapters import GaraLinear, Gates
from gara_model.config import GaraConfig

DIM = 12


def make_layer(config: GaraConfig, seed: int = 0) -> GaraLinear:
    torch.manual_seed(seed)
    layer = GaraLinear(nn.Linear(DIM, 3 * DIM), config)
    with torch.no_grad():
        for adapter in layer.adapters.values():
            adapter.lora_B.normal_(0, 0.5)
    return layer.eval()


def closed_form_delta(adapter, z_space, z_low, z_high, r_low):
    """(1 - z_space) sum_i z^L_i b^L_i a^L_i^T + z_space sum_j z^H_j b^H_j a^H_j^T, written out term by term."""
    A, B = adapter.lora_A, adapter.lora_B
    delta = torch.zeros(B.shape[0], A.shape[1])
    for i in range(r_low):
        delta += (1 - z_space) * z_low[i] * torch.outer(B[:, i], A[i])
    for j in range(len(z_high)):
        delta += z_space * z_high[j] * torch.outer(B[:, r_low + j], A[r_low + j])
    return delta


@pytest.mark.parametrize("z_space", [0.0, 1.0])
def test_delta_weight_equals_closed_form_with_forced_gates(z_space):
    config = GaraConfig(variant="gara", ranks=(3, 5), gate_hidden_dim=8)
    layer = make_layer(config)
    adapter = layer.adapters["k"]
    z_low, z_high = torch.tensor([1.0, 0.0, 1.0]), torch.tensor([0.0, 1.0, 1.0, 0.0, 1.0])
    c = torch.cat([(1 - z_space) * z_low, z_space * z_high])[None]
    expected = closed_form_delta(adapter, z_space, z_low, z_high, r_low=3)
    assert torch.allclose(adapter.delta_weight(c)[0], expected, atol=1e-6)
    # the fixed-shape form that traced graphs (torch.compile, the ONNX export) use: all components, the off ones x 0
    assert torch.allclose(adapter.delta_weight(c, fixed_shapes=True)[0], expected, atol=1e-6)


def test_gara_gates_build_the_coefficients_of_the_chosen_space():
    config = GaraConfig(variant="gara", ranks=(3, 5), gate_hidden_dim=8)
    layer = make_layer(config)
    gates = layer.adapters["q"].gate(torch.randn(6, layer.feature.out_features) * 3)
    space = gates.rank_set[:, None]
    assert torch.equal(gates.coefficients, torch.cat([(1 - space) * gates.components[:, :3], space * gates.components[:, 3:]], dim=1))
    assert set(gates.rank_set.unique().tolist()) == {0.0, 1.0}


@pytest.mark.parametrize(
    "config",
    [
        GaraConfig(variant="gara", ranks=(3, 5), gate_hidden_dim=8),
        GaraConfig(variant="gara_unified", ranks=(6,), gate_hidden_dim=8),
        GaraConfig(variant="lora", ranks=(4,)),
        GaraConfig(variant="gara", ranks=(2, 4), projections=("q", "v")),
    ],
    ids=["gara", "gara_unified", "lora", "gara_q_v_only"],
)
def test_output_is_base_plus_delta_x_on_both_paths(config):
    layer = make_layer(config)
    x = torch.randn(2 * 4, 3, 3, DIM)  # 2 images of 4 windows each, grouped by image
    gates = layer.gate(torch.randn(2, 3, 3, DIM))
    delta = layer.delta_weight(gates)  # 2 x 3C x C
    expected = torch.cat([layer.base_layer(x[:4]) + x[:4] @ delta[0].T, layer.base_layer(x[4:]) + x[4:] @ delta[1].T])
    assert torch.allclose(layer(x, gates), expected, atol=1e-5)
    for name in {"q", "k", "v"} - set(config.projections):
        rows = slice("qkv".index(name) * DIM, ("qkv".index(name) + 1) * DIM)
        assert torch.equal(delta[:, rows], torch.zeros_like(delta[:, rows]))
    single = {k: Gates(g.coefficients[:1], None, None) for k, g in gates.items()}
    layer.merged_inference = True
    merged = layer(x[:4], single)
    layer.merged_inference = False
    unmerged = layer(x[:4], single)
    assert torch.allclose(merged, unmerged, atol=1e-5)
    assert torch.allclose(merged, expected[:4], atol=1e-5)


def test_fresh_adapter_is_exactly_the_base_layer():
    layer = GaraLinear(nn.Linear(DIM, 3 * DIM), GaraConfig(ranks=(2, 4), gate_hidden_dim=8)).eval()
    x = torch.randn(1, 5, 5, DIM)
    gates = layer.gate(x)
    assert torch.equal(layer(x, gates), layer.base_layer(x))
    layer.train()
    assert torch.equal(layer(x, layer.gate(x)), layer.base_layer(x))


def test_base_weight_is_never_modified():
    layer = make_layer(GaraConfig(ranks=(2, 4), gate_hidden_dim=8))
    before = layer.base_layer.weight.detach().clone()
    x = torch.randn(1, 4, 4, DIM)
    layer(x, layer.gate(x))
    assert torch.equal(layer.base_layer.weight, before)


def test_rejects_a_linear_that_is_not_a_fused_qkv():
    with pytest.raises(ValueError, match="fused qkv"):
        GaraLinear(nn.Linear(DIM, DIM), GaraConfig())


@pytest.mark.parametrize("training", [False, True], ids=["eval", "train"])
def test_moe_lora_uses_exactly_one_block_per_input(training):
    config = GaraConfig(variant="moe_lora", ranks=(2, 3, 2), gate_hidden_dim=8)
    layer = make_layer(config).train(training)
    torch.manual_seed(5)
    gates = layer.gate(torch.randn(40, 3, 3, DIM) * 3)["v"]
    blocks = gates.coefficients.detach().split([2, 3, 2], dim=1)
    on = torch.stack([b.all(dim=1) for b in blocks], dim=1)  # 40 x 3: block fully on
    off = torch.stack([(b == 0).all(dim=1) for b in blocks], dim=1)
    assert torch.equal(on.sum(1), torch.ones(40, dtype=torch.long)) and torch.equal(on | off, torch.ones_like(on))
    assert torch.equal(on.float().argmax(1).float(), gates.rank_set) and gates.num_rank_sets == 3
    assert len(set(gates.rank_set.tolist())) > 1  # the router's choice depends on the input


def test_delta_weight_refuses_a_non_finite_update():
    layer = make_layer(GaraConfig(ranks=(2, 4), gate_hidden_dim=8))
    x = torch.randn(1, 3, 3, DIM)
    gates = {name: Gates(torch.ones(1, 6)) for name in layer.adapters}
    with torch.no_grad():
        layer.adapters["k"].lora_B[0, 0] = float("nan")
    with pytest.raises(ValueError, match="Delta W is not finite"):
        layer.delta_weight(gates)
    with pytest.raises(ValueError, match="Delta W is not finite"):
        layer(x, gates)  # the merged single-image path forms Delta W
    # a traced graph cannot check per image (the exporter checks the weights once): the NaN passes through
    traced = torch.compile(lambda: layer.delta_weight(gates), backend="eager", fullgraph=True)()
    assert torch.isnan(traced).any()


def test_gating_feature_is_standardised_with_training_statistics():
    layer = GaraLinear(nn.Linear(DIM, 3 * DIM), GaraConfig(ranks=(2, 4), gate_hidden_dim=8)).train()
    torch.manual_seed(6)
    batches = [torch.randn(4, 5, 5, DIM) * 3 + 2 for _ in range(300)]
    for batch in batches:
        layer.feature(batch)
    layer.eval()
    features = torch.cat([layer.feature(b) for b in batches[-50:]])  # B x 2C: standardised token mean and std
    assert features.shape == (200, 2 * DIM)
    assert features.mean(0).abs().max() < 0.3 and (features.std(0) - 1).abs().max() < 0.3
    std, mean = torch.std_mean(batches[0][0].flatten(0, 1), dim=0, correction=0)
    standardizer = layer.feature.standardizer
    raw = torch.cat([mean, std])
    expected = (raw - standardizer.running_mean) / (standardizer.running_square - standardizer.running_mean**2 + 1e-5).sqrt()
    assert torch.allclose(layer.feature(batches[0][:1])[0], expected, atol=1e-5)
