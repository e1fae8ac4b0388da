"""image_size and BA-SAM scaling: native size unchanged, formula at other sizes, shapes, gradients, round trip."""

import copy
import math

import numpy as np
import pytest
import torch
from segment_anything.modeling import ImageEncoderViT
from segment_anything.modeling.image_encoder import Attention

from gara_model.build import build_model
from gara_model.checkpoint import save_adapter
from gara_model.modeling import (
    adapter_state_dict,
    inject_adapters,
    model_scaling,
    set_attention_backend,
    set_image_size,
    set_scaling,
)
from gara_model.modeling.attention import EncoderAttention
from gara_model.modeling.basam import BiasModeMask, token_distances
from gara_model.modeling.resolution import resize_pos_embed
from gara_model.predictor import GaraPredictor
from gara_model.prompts import ObjectPrompt

from .tiny import VARIANT_CONFIGS, make_gara, sam_outputs

GLOBAL_BLOCKS = (1, 3)  # of the tiny SAM; its native grid is 16 x 16 (128 pixels, patch 8)


def test_scale_is_exactly_sams_at_the_native_size():
    attn = Attention(768, num_heads=12, use_rel_pos=True, input_size=(64, 64))  # ViT-B's global attention
    mask = BiasModeMask(native_tokens=64 * 64)
    assert mask.scale_factor(64 * 64) == 1.0
    assert attn.scale * mask.scale_factor(64 * 64) == 64**-0.5


@pytest.mark.parametrize("size", [512, 640, 768, 1024, 1280])
def test_scale_formula_at_other_sizes(size):
    tokens = (size // 16) ** 2
    expected = 64**-0.5 * math.log(tokens, 4096)
    factor = BiasModeMask(4096).scale_factor(tokens)
    assert 64**-0.5 * factor == pytest.approx(expected, rel=1e-12)
    assert (factor < 1.0) == (size < 1024) and (factor > 1.0) == (size > 1024)


@pytest.mark.parametrize("grid", [(16, 16), (8, 12)])
def test_attention_uses_the_basam_scale_and_mask(tiny_sam, grid):
    """The BA-SAM block computes softmax(scale * log_N_train(N) q k^T + rel-pos - c * distance) v."""
    sam_attn = tiny_sam.image_encoder.blocks[1].attn
    ours = EncoderAttention(sam_attn)
    ours.bias_mode = BiasModeMask(16 * 16)
    x = torch.randn(2, *grid, 96, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ours.bias_mode.coefficient.zero_()
        reference = copy.deepcopy(sam_attn)
        reference.scale = sam_attn.scale * (math.log(grid[0] * grid[1]) / math.log(256))
        for backend in ("sam", "sdpa"):
            set_attention_backend(ours, backend)
            got, expected = ours(x), reference(x)
            assert torch.equal(got, expected) if backend == "sam" else torch.allclose(got, expected, atol=1e-5)
        ours.bias_mode.coefficient.fill_(0.1)
        assert not torch.allclose(ours(x), reference(x), atol=1e-3)


def test_bias_mode_mask_penalises_distance():
    mask = BiasModeMask(256)((3, 4)).detach()
    assert mask.shape == (12, 12)
    assert torch.equal(mask.diagonal(), torch.zeros(12))
    assert mask[0, 1] == pytest.approx(-0.1) and mask[0, 4] == pytest.approx(-0.1)  # right and below neighbours
    assert mask[0, 11] == pytest.approx(-0.1 * math.hypot(2, 3))  # opposite corner
    assert torch.equal(token_distances((3, 4)), token_distances((3, 4)).T)


def test_resizing_the_positional_embedding():
    pos = torch.randn(1, 16, 16, 8)
    assert resize_pos_embed(pos, (16, 16)) is pos
    assert resize_pos_embed(pos, (8, 12)).shape == (1, 8, 12, 8)
    constant = torch.full((1, 16, 16, 8), 0.5)
    assert torch.allclose(resize_pos_embed(constant, (6, 10)), torch.full((1, 6, 10, 8), 0.5), atol=1e-6)
    # bicubic resampling to twice the size and back returns close to the original for a smooth embedding
    ys, xs = torch.meshgrid(torch.linspace(0, 1, 16), torch.linspace(0, 1, 16), indexing="ij")
    smooth = torch.stack([torch.sin(3 * ys), torch.cos(2 * xs)], dim=-1)[None]
    assert torch.allclose(resize_pos_embed(resize_pos_embed(smooth, (32, 32)), (16, 16)), smooth, atol=0.02)


def test_default_path_is_bit_identical_to_sam(tiny_sam, images):
    """Native size and scaling "none": plain SAM keeps SAM's own modules; setting them explicitly changes nothing."""
    for plain in (build_model("tiny", pretrained=False), build_model("tiny", image_size=128, scaling="none")):
        assert type(plain.image_encoder) is ImageEncoderViT
        assert all(type(block.attn) is Attention for block in plain.image_encoder.blocks)
    explicit = set_scaling(set_image_size(copy.deepcopy(tiny_sam), 128), "none")
    with torch.no_grad():
        for e, g in zip(sam_outputs(tiny_sam, images), sam_outputs(explicit, images)):
            for key in ("masks", "iou_predictions", "low_res_logits"):
                assert torch.equal(e[key], g[key]), key


def test_plain_sam_at_another_size_is_sams_own_encoder_with_a_resized_embedding(tiny_sam):
    """Nothing but the positional embedding needs resizing: SAM's get_rel_pos interpolates the global tables."""
    ours = set_image_size(copy.deepcopy(tiny_sam), 64)
    theirs = copy.deepcopy(tiny_sam.image_encoder)
    theirs.pos_embed = torch.nn.Parameter(resize_pos_embed(tiny_sam.image_encoder.pos_embed, (8, 8)))
    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(2)) * 255
    with torch.no_grad():
        assert torch.equal(ours.image_encoder(x), theirs(x))
    assert torch.equal(ours.image_encoder.pos_embed, tiny_sam.image_encoder.pos_embed)  # SAM's weights untouched


@pytest.mark.parametrize("scaling", ["none", "basam"])
@pytest.mark.parametrize("adapters", [False, True], ids=["sam", "gara"])
def test_shapes_at_non_square_multiples_of_the_patch_size(tiny_sam, scaling, adapters):
    model = make_gara(tiny_sam) if adapters else copy.deepcopy(tiny_sam)
    set_scaling(set_image_size(model, 96), scaling)
    with torch.no_grad():
        for h, w in [(48, 80), (136, 64)]:
            assert model.image_encoder(torch.rand(1, 3, h, w)).shape == (1, 64, h // 8, w // 8)
    with pytest.raises(ValueError, match="x: input of 50 x 80 pixels"):
        model.image_encoder(torch.rand(1, 3, 50, 80))


def test_sam_forward_and_predictor_at_another_size(tiny_sam, images):
    model = set_scaling(set_image_size(make_gara(tiny_sam), 64), "basam")
    assert model.prompt_encoder.image_embedding_size == (8, 8) and model.prompt_encoder.input_image_size == (64, 64)
    with torch.no_grad():
        small = torch.nn.functional.interpolate(images, size=(64, 64), mode="bilinear")
        out = sam_outputs(model, small)[0]
    assert out["masks"].shape == (1, 3, 128, 128) and out["low_res_logits"].shape == (1, 3, 32, 32)
    predictor = GaraPredictor(model, device="cpu")
    image = (np.random.default_rng(0).random((96, 160, 3)) * 255).astype(np.uint8)
    predictor.set_image(image)
    assert predictor.input_size == (38, 64)  # longest side resized to 64
    result = predictor.predict([ObjectPrompt("a", points=np.array([[70.0, 50.0]]), labels=np.array([1]))])
    assert result.masks.shape == (1, 1, 96, 160)


def test_from_files_takes_image_size():
    predictor = GaraPredictor.from_files(device="cpu", image_size=64)
    assert predictor.model.image_encoder.img_size == 64 and predictor.transform.target_length == 64


@pytest.mark.parametrize("order", ["basam_then_adapters", "adapters_then_basam"])
def test_bias_coefficient_trains_with_the_adapters(tiny_sam, images, order):
    if order == "basam_then_adapters":
        model = inject_adapters(set_scaling(set_image_size(copy.deepcopy(tiny_sam), 64), "basam"), VARIANT_CONFIGS["gara"])
    else:
        model = set_scaling(set_image_size(make_gara(tiny_sam), 64), "basam")
    model.train()
    names = [f"image_encoder.blocks.{i}.attn.bias_mode.coefficient" for i in GLOBAL_BLOCKS]
    assert set(names) <= set(adapter_state_dict(model))
    small = torch.nn.functional.interpolate(images, size=(64, 64), mode="bilinear")
    model.image_encoder(small).square().mean().backward()
    params = dict(model.named_parameters())
    for name in names:
        assert params[name].requires_grad and params[name].grad is not None and params[name].grad.abs() > 0, name
    assert not params["image_encoder.pos_embed"].requires_grad
    assert not params["image_encoder.blocks.1.attn.rel_pos_h"].requires_grad


def test_bias_coefficient_round_trips_through_adapter_files(tiny_sam, images, tmp_path):
    trained = set_scaling(set_image_size(make_gara(tiny_sam), 64), "basam")
    with torch.no_grad():
        for i, block in enumerate(trained.image_encoder.blocks[1::2]):
            block.attn.bias_mode.coefficient.fill_(0.3 + i)
    checkpoint = tmp_path / "sam_tiny.pth"
    torch.save(tiny_sam.state_dict(), checkpoint)
    path = save_adapter(trained, tmp_path / "adapter.safetensors")
    loaded = build_model("tiny", checkpoint, adapter=path, image_size=64, scaling="basam")
    for name, value in adapter_state_dict(trained).items():
        assert torch.equal(adapter_state_dict(loaded)[name], value), name
    small = torch.nn.functional.interpolate(images, size=(64, 64), mode="bilinear")
    with torch.no_grad():
        assert torch.equal(loaded.image_encoder(small), trained.image_encoder(small))


def test_setting_back_to_none_removes_basam_and_keeps_a_trained_coefficient(tiny_sam):
    model = set_scaling(set_image_size(make_gara(tiny_sam), 64), "basam")
    coefficient = model.image_encoder.blocks[1].attn.bias_mode.coefficient
    set_scaling(set_image_size(model, 96), "basam")
    assert model.image_encoder.blocks[1].attn.bias_mode.coefficient is coefficient
    set_scaling(model, "none")
    assert model.image_encoder.img_size == 96 and model.image_encoder.blocks[1].attn.bias_mode is None
    assert model_scaling(model) == "none"


def test_resizing_leaves_the_attention_and_basam_leaves_the_geometry(tiny_sam):
    """Two separate jobs: set_image_size changes no attention module, set_scaling no size."""
    model = set_image_size(make_gara(tiny_sam), 64)
    assert model_scaling(model) == "none"
    set_scaling(model, "basam")
    assert model.image_encoder.img_size == 64 and model.prompt_encoder.input_image_size == (64, 64)
    masks = [block.attn.bias_mode for block in model.image_encoder.blocks if block.window_size == 0]
    assert len(masks) == len(GLOBAL_BLOCKS) and all(isinstance(m, BiasModeMask) for m in masks)
    assert all(block.attn.bias_mode is None for block in model.image_encoder.blocks if block.window_size > 0)
    set_image_size(model, 96)
    assert [block.attn.bias_mode for block in model.image_encoder.blocks if block.window_size == 0] == masks


@pytest.mark.parametrize(
    "change, message",
    [(lambda sam: set_image_size(sam, 100), "image_size must be a positive multiple of the patch size 8"),
     (lambda sam: set_image_size(sam, 0), "image_size must be"),
     (lambda sam: set_scaling(sam, "yarn"), "scaling must be one of"),
     (lambda sam: build_model("tiny", scaling="yarn"), "scaling must be one of")],
    ids=["size 100", "size 0", "scaling", "scaling through the builder"],
)
def test_bad_arguments(tiny_sam, change, message):
    with pytest.raises(ValueError, match=message):
        change(tiny_sam)
