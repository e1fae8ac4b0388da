"""Builders: SAM from segment_anything's own classes (official variants and a tiny one), plus GaRA adapters.

SAM hyper-parameters live here only: the official ones in segment_anything's `sam_model_registry`,
the tiny one (tests, the embedded default) in `build_sam_tiny`.
"""

from __future__ import annotations

import logging
import os
from functools import partial
from pathlib import Path

import torch
from segment_anything import sam_model_registry
from segment_anything.modeling import ImageEncoderViT, MaskDecoder, PromptEncoder, Sam, TwoWayTransformer

from gara_model.checkpoint import OFFICIAL_CHECKPOINTS, CheckpointError, load_adapter, load_sam_weights, read_adapter_config
from gara_model.config import GaraConfig
from gara_model.modeling import inject_adapters, set_image_size

log = logging.getLogger(__name__)

EMBEDDED_TINY_CHECKPOINT = Path(__file__).parent / "assets" / "tiny_sam.safetensors"
# GaRA (r_L 4, r_H 32) for the embedded tiny SAM: seed 0 of scripts/reproduce_table5.py (docs/reproduction.md).
EMBEDDED_TINY_ADAPTER = Path(__file__).parent / "assets" / "tiny_gara.safetensors"
_PIXEL_MEAN = [123.675, 116.28, 103.53]
_PIXEL_STD = [58.395, 57.12, 57.375]


def build_sam_tiny(image_size: int = 128) -> Sam:
    """A small SAM (about 0.7 M parameters) from segment_anything's classes: 8 x 8 patches, 96-d, 4 blocks."""
    patch_size, prompt_dim = 8, 64
    grid = image_size // patch_size
    return Sam(
        image_encoder=ImageEncoderViT(
            img_size=image_size,
            patch_size=patch_size,
            embed_dim=96,
            depth=4,
            num_heads=4,
            mlp_ratio=4,
            norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
            qkv_bias=True,
            use_rel_pos=True,
            global_attn_indexes=(1, 3),
            window_size=6,
            out_chans=prompt_dim,
        ),
        prompt_encoder=PromptEncoder(
            embed_dim=prompt_dim,
            image_embedding_size=(grid, grid),
            input_image_size=(image_size, image_size),
            mask_in_chans=16,
        ),
        mask_decoder=MaskDecoder(
            num_multimask_outputs=3,
            transformer=TwoWayTransformer(depth=2, embedding_dim=prompt_dim, mlp_dim=256, num_heads=4),
            transformer_dim=prompt_dim,
            iou_head_depth=3,
            iou_head_hidden_dim=64,
        ),
        pixel_mean=_PIXEL_MEAN,
        pixel_std=_PIXEL_STD,
    )


SAM_BUILDERS = {
    "vit_b": sam_model_registry["vit_b"],
    "vit_l": sam_model_registry["vit_l"],
    "vit_h": sam_model_registry["vit_h"],
    "tiny": build_sam_tiny,
}


def build_sam(
    variant: str = "vit_b",
    checkpoint: str | os.PathLike | None = None,
    image_size: int | None = None,
    scaling: str = "none",
) -> Sam:
    """A plain SAM in eval mode; weights from `checkpoint` (official .pth or our .safetensors), else random.

    image_size: the encoder's input size (a multiple of the patch size; None = native, 1024 for official SAM);
    scaling: "none" or "basam" (BA-SAM's attention in the global blocks). See `set_image_size`.
    """
    if variant not in SAM_BUILDERS:
        raise ValueError(f"SAM variant must be one of {sorted(SAM_BUILDERS)}, got {variant!r}")
    sam = SAM_BUILDERS[variant]()
    if checkpoint is not None:
        load_sam_weights(sam, checkpoint, variant)
    if image_size is not None or scaling != "none":
        set_image_size(sam, image_size, scaling)
    return sam.eval()


def build_gara_sam(
    variant: str = "vit_b",
    checkpoint: str | os.PathLike | None = None,
    config: GaraConfig | None = None,
    adapter: str | os.PathLike | None = None,
    image_size: int | None = None,
    scaling: str | None = None,
) -> Sam:
    """SAM with gated-rank adapters: a fresh `config` (default GaraConfig()), or the trained `adapter` file.

    An adapter file brings the image size and scaling it was trained at; `image_size` / `scaling` (None: keep)
    then override them, as in `set_image_size`.
    """
    sam = build_sam(variant, checkpoint)
    if adapter is not None:
        stored, _ = read_adapter_config(adapter)
        if config is not None and config != stored:
            raise ValueError(f"config {config} differs from the one stored in adapter {Path(adapter)}: {stored}")
        load_adapter(sam, adapter)
    else:
        inject_adapters(sam, config or GaraConfig())
    if image_size is not None or scaling is not None:
        set_image_size(sam, image_size, scaling)
    return sam


def load_embedded_sam() -> Sam:
    """The tiny SAM trained on clean synthetic scenes that ships inside the package (no download needed)."""
    return pretrained_sam("tiny")


def pretrained_sam(variant: str, checkpoint: str | os.PathLike | None = None, **kwargs) -> Sam:
    """`build_sam` with trained weights: from `checkpoint`, or the embedded ones for "tiny" when there is none.

    Adapters trained or evaluated on a randomly initialised SAM mean nothing, so a missing checkpoint for any
    other variant is an error naming the file to download. kwargs: image_size, scaling as in `build_sam`.
    """
    if checkpoint is None and variant != "tiny":
        expected = OFFICIAL_CHECKPOINTS.get(variant, "a SAM checkpoint")
        raise CheckpointError(f"SAM variant {variant!r} needs a checkpoint (e.g. {expected}); only 'tiny' has embedded weights")
    if checkpoint is None:
        log.info("no SAM checkpoint given: using the embedded tiny SAM (%s)", EMBEDDED_TINY_CHECKPOINT.name)
        checkpoint = EMBEDDED_TINY_CHECKPOINT
    return build_sam(variant, checkpoint, **kwargs)


def load_embedded_gara_sam() -> Sam:
    """The embedded tiny SAM with its shipped GaRA adapter, trained on degraded synthetic scenes."""
    return load_adapter(load_embedded_sam(), EMBEDDED_TINY_ADAPTER)
