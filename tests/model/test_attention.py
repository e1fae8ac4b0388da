"""EncoderAttention: the "sdpa" backend equals SAM's attention to float tolerance, the "sam" backend bit for bit."""

import copy

import pytest
import torch

from gara_model.modeling import set_adapters_enabled, set_attention_backend
from gara_model.modeling.attention import EncoderAttention, GatedAttention

from .tiny import make_gara

# tiny SAM: blocks 0 and 2 attend in 6 x 6 windows, blocks 1 and 3 globally over the 16 x 16 grid
BLOCKS = {"window": (0, (6, 6)), "global": (1, (16, 16))}
ATOL = 1e-5  # SDPA sums in another order than SAM's q @ k^T, + rel-pos, softmax, @ v; measured differences ~1e-6


def attention_pair(sam, kind, backend):
    """(SAM's own Attention of that block, an EncoderAttention over the same parameters, and its input size)."""
    index, hw = BLOCKS[kind]
    sam_attn = sam.image_encoder.blocks[index].attn
    ours = EncoderAttention(sam_attn)
    set_attention_backend(ours, backend)
    return sam_attn, ours, hw


@pytest.mark.parametrize("kind", list(BLOCKS))
@pytest.mark.parametrize("batch", [1, 2])
@pytest.mark.parametrize("backend", ["sdpa", "sam"])
def test_attention_equals_sam(tiny_sam, kind, batch, backend, device):
    sam_attn, ours, (H, W) = attention_pair(tiny_sam.to(device), kind, backend)
    x = torch.randn(batch, H, W, 96, generator=torch.Generator().manual_seed(3)).to(device)
    with torch.no_grad():
        expected, got = sam_attn(x), ours(x)
    if backend == "sam":
        assert torch.equal(got, expected)
    else:
        assert torch.allclose(got, expected, atol=ATOL, rtol=0)


@pytest.mark.parametrize("kind", list(BLOCKS))
def test_sdpa_gradients_equal_sam(tiny_sam, kind):
    sam_attn, ours, (H, W) = attention_pair(tiny_sam, kind, "sdpa")
    x = torch.randn(2, H, W, 96, generator=torch.Generator().manual_seed(4), requires_grad=True)
    params = [x, sam_attn.qkv.weight, sam_attn.rel_pos_h, sam_attn.rel_pos_w]
    expected = torch.autograd.grad(sam_attn(x).square().sum(), params)
    got = torch.autograd.grad(ours(x).square().sum(), params)
    for e, g in zip(expected, got):
        assert torch.allclose(g, e, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("batch", [1, 2])
def test_gara_sam_with_disabled_adapters_equals_sam_to_tolerance(tiny_sam, images, batch):
    """The default backend over the whole tiny encoder (window and global blocks): atol 1e-5 on its output."""
    gara = make_gara(tiny_sam)
    set_adapters_enabled(gara, False)
    assert all(m.backend == "sdpa" for m in gara.modules() if isinstance(m, GatedAttention))
    sdpa, sam_math = copy.deepcopy(gara), copy.deepcopy(gara)
    set_attention_backend(sdpa, "sdpa")
    set_attention_backend(sam_math, "sam")
    with torch.no_grad():
        expected, got = tiny_sam.image_encoder(images[:batch]), gara.image_encoder(images[:batch])
        # the default computes exactly what the "sdpa" backend computes, and not SAM's own math
        assert torch.equal(got, sdpa.image_encoder(images[:batch]))
        assert torch.equal(sam_math.image_encoder(images[:batch]), expected)
    assert not torch.equal(got, expected)  # really another computation
    assert torch.allclose(got, expected, atol=ATOL, rtol=0)


def test_backends_agree_with_adapters_enabled(tiny_sam, images):
    gara = make_gara(tiny_sam)
    exact = copy.deepcopy(gara)
    set_attention_backend(exact, "sam")
    with torch.no_grad():
        assert torch.allclose(gara.image_encoder(images), exact.image_encoder(images), atol=ATOL, rtol=0)


def test_unknown_backend_is_refused(tiny_sam):
    with pytest.raises(ValueError, match="backend must be one of"):
        set_attention_backend(make_gara(tiny_sam), "flash")
