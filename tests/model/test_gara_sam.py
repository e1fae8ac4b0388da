"""GaRA-SAM as a whole: identity at init, per-image gates, merged = unmerged, only adapters train."""

import copy

import pytest
import torch

from gara_model.adapters import GatedRankAdapter
from gara_model.build import build_model
from gara_model.config import GaraConfig
from gara_model.modeling import (
    adapter_layers,
    count_parameters,
    inject_adapters,
    set_adapters_enabled,
    set_attention_backend,
    set_merged_inference,
)
from gara_model.adapters.gates import record_gates, summarize_gates

from .tiny import VARIANT_CONFIGS, make_gara, sam_outputs

VARIANTS = list(VARIANT_CONFIGS)


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("training", [False, True], ids=["eval", "train"])
def test_fresh_gara_sam_equals_sam_bit_for_bit(tiny_sam, images, variant, training):
    """With SAM's own attention math; the default "sdpa" backend equals SAM to float tolerance (test_attention.py)."""
    gara = inject_adapters(copy.deepcopy(tiny_sam), VARIANT_CONFIGS[variant]).train(training)
    set_attention_backend(gara, "sam")
    for one_image in (images[:1], images):  # merged path (1 image) and unmerged path (batch)
        expected, got = sam_outputs(tiny_sam, one_image), sam_outputs(gara, one_image)
        for e, g in zip(expected, got):
            for key in ("masks", "iou_predictions", "low_res_logits"):
                assert torch.equal(e[key], g[key]), key


@pytest.mark.parametrize("variant", VARIANTS)
def test_disabled_adapters_compute_exactly_sam(tiny_sam, images, variant):
    gara = make_gara(tiny_sam, VARIANT_CONFIGS[variant])
    assert not torch.equal(gara.image_encoder(images[:1]), tiny_sam.image_encoder(images[:1]))
    set_adapters_enabled(gara, False)
    set_attention_backend(gara, "sam")
    assert torch.equal(gara.image_encoder(images), tiny_sam.image_encoder(images))


@pytest.mark.parametrize("variant", VARIANTS)
def test_merged_equals_unmerged(tiny_sam, images, variant, device):
    gara = make_gara(tiny_sam, VARIANT_CONFIGS[variant]).to(device)
    images = images.to(device)
    with torch.no_grad():
        merged = gara.image_encoder(images[1:])
        set_merged_inference(gara, False)
        unmerged = gara.image_encoder(images[1:])
    assert torch.allclose(merged, unmerged, atol=1e-5, rtol=1e-4)


def test_gates_are_per_image_and_eval_is_deterministic(tiny_sam, images):
    gara = make_gara(tiny_sam)
    with torch.no_grad():
        batch = gara.image_encoder(images)
        singles = torch.cat([gara.image_encoder(images[i : i + 1]) for i in range(2)])
        again = gara.image_encoder(images)
    assert torch.equal(batch, again)
    assert torch.allclose(batch, singles, atol=1e-5, rtol=1e-4)


def test_record_gates_reports_each_adapter_per_image(tiny_sam, images):
    config = VARIANT_CONFIGS["gara"]
    gara = make_gara(tiny_sam, config)
    with torch.no_grad(), record_gates(gara) as records:
        gara.image_encoder(images)
    summaries = summarize_gates(records)
    depth = len(gara.image_encoder.blocks)
    assert len(summaries) == 2 and len(summaries[0].adapters) == depth * 3
    assert summaries[0].adapters[0].adapter == "image_encoder.blocks.0.attn.qkv.adapters.q"
    for adapter, (_, gates) in zip(summaries[1].adapters, records):
        chosen = gates.components[1, : config.ranks[0]] if adapter.rank_set == 0 else gates.components[1, config.ranks[0] :]
        assert adapter.active_components == int(chosen.sum())
        assert adapter.rank_set == int(gates.rank_set[1]) and adapter.num_rank_sets == 2
    high = sum(a.rank_set == 1 for a in summaries[0].adapters)
    assert summaries[0].high_rank_share == pytest.approx(high / (depth * 3))


@pytest.mark.parametrize("variant", VARIANTS)
def test_only_adapter_parameters_get_gradients(tiny_sam, images, variant):
    gara = make_gara(tiny_sam, VARIANT_CONFIGS[variant]).train()
    torch.manual_seed(0)
    gara.image_encoder(images).square().mean().backward()
    adapter_params = {id(p) for m in gara.modules() if isinstance(m, GatedRankAdapter) for p in m.parameters()}
    for name, p in gara.named_parameters():
        if id(p) in adapter_params:
            assert p.requires_grad and p.grad is not None, name
        else:
            assert not p.requires_grad and p.grad is None, name
    # the straight-through estimator reaches the last layer of every gate MLP
    for name, p in gara.named_parameters():
        if "gate" in name and name.endswith("weight") and variant != "lora":
            assert p.grad is not None, name
    assert any(p.grad.abs().sum() > 0 for n, p in gara.named_parameters() if "rank_space_gate" in n) or variant != "gara"


def test_blocks_option_adapts_only_those_blocks(tiny_sam):
    gara = inject_adapters(copy.deepcopy(tiny_sam), GaraConfig(ranks=(2, 4), blocks=(0, 2)))
    assert sorted(adapter_layers(gara)) == ["image_encoder.blocks.0.attn.qkv", "image_encoder.blocks.2.attn.qkv"]
    with pytest.raises(ValueError, match="index 9 is out of range"):
        inject_adapters(copy.deepcopy(tiny_sam), GaraConfig(blocks=(9,)))
    with pytest.raises(ValueError, match="already has GaRA adapters"):
        inject_adapters(gara, GaraConfig())


def test_state_dict_keeps_sam_names(tiny_sam):
    gara = inject_adapters(copy.deepcopy(tiny_sam), GaraConfig(ranks=(2, 4)))
    keys = set(gara.state_dict())
    for key in tiny_sam.state_dict():
        assert key in keys or key.replace(".attn.qkv.", ".attn.qkv.base_layer.") in keys, key


@pytest.mark.parametrize("gating_feature, total", [("mean", 21_294_180), ("mean_std", 26_602_596)])
def test_parameter_counts_for_vit_b_with_default_ranks(gating_feature, total):
    """The numbers docs/model.md states: ViT-B with r_L = 16, r_H = 256 on q, k and v of all 12 blocks; the gate
    MLPs read f(x) of width C (token mean) or 2C (token mean and std)."""
    count = count_parameters(build_model("vit_b", config=GaraConfig(gating_feature=gating_feature), pretrained=False))
    dim, depth, hidden, (r_low, r_high) = 768, 12, 64, (16, 256)
    feature = dim if gating_feature == "mean" else 2 * dim
    components = (r_low + r_high) * 2 * dim
    rank_space_gate = feature * hidden + hidden + hidden + 1
    component_gates = sum(feature * hidden + hidden + hidden * hidden + hidden + hidden * r + r for r in (r_low, r_high))
    assert count.trainable == depth * 3 * (components + rank_space_gate + component_gates) == total
    assert count.frozen == 93_735_472  # SAM ViT-B itself


def test_injected_adapters_follow_the_model_mode(tiny_sam):
    gara = inject_adapters(copy.deepcopy(tiny_sam).eval(), GaraConfig(ranks=(2, 4)))
    assert not any(m.training for m in gara.modules())
