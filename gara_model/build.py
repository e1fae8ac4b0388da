"""The one assembly of a model, `build_model`: SAM from segment_anything's own classes (official variants and a
tiny one), its weights, GaRA adapters (fresh from a config, or trained from a file) and the encoder's input size
and scaling.

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
from gara_model.modeling import adapter_layers, inject_adapters, model_scaling, set_image_size, set_scaling

log = logging.getLogger(__name__)

EMBEDDED_TINY_CHECKPOINT = Path(__file__).parent / "assets" / "tiny_sam.safetensors"
# GaRA (r_L 4, r_H 32) for the embedded tiny SAM: seed 0 of scripts/reproduce.py (docs/reproduction.md).
EMBEDDED_TINY_ADAPTER = Path(__file__).parent / "assets" / "tiny_gara.safetensors"
NO_ADAPTER = "none"  # build_from_files(adapter=NO_ADAPTER): plain SAM, also without a checkpoint (no embedded adapter)
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


def sam_weights(variant: str, checkpoint: str | os.PathLike | None, pretrained: bool = True) -> Path | None:
    """Which weights a SAM of `variant` gets: `checkpoint` when given; else, pretrained, the embedded ones for
    "tiny" and an error naming the file to download for any other variant (adapters trained or evaluated on a
    randomly initialised SAM mean nothing); else None, SAM's random initialisation."""
    if checkpoint is not None:
        return Path(checkpoint)
    if not pretrained:
        return None
    if variant != "tiny":
        expected = OFFICIAL_CHECKPOINTS.get(variant, "a SAM checkpoint")
        raise CheckpointError(f"SAM variant {variant!r} needs a checkpoint (e.g. {expected}); only 'tiny' has embedded weights")
    log.info("no SAM checkpoint given: using the embedded tiny SAM (%s)", EMBEDDED_TINY_CHECKPOINT.name)
    return EMBEDDED_TINY_CHECKPOINT


def build_model(
    variant: str = "tiny",
    checkpoint: str | os.PathLike | None = None,
    *,
    adapter: str | os.PathLike | None = None,
    config: GaraConfig | None = None,
    image_size: int | None = None,
    scaling: str | None = None,
    pretrained: bool = True,
) -> Sam:
    """SAM or GaRA-SAM, in eval mode: every model the package runs, trains or evaluates is assembled here.

    variant: one of SAM_BUILDERS. checkpoint, pretrained: its weights, as `sam_weights` decides (pretrained=False
    without a checkpoint: random, for training a base from scratch, tests and benchmarks).
    adapter: a trained adapter file; the model takes its config and the image size and scaling it was trained at
    (logged when they are not the native ones). config: fresh adapters (a no-op until trained); with `adapter`,
    it must equal the file's. Neither: plain SAM.
    image_size: the encoder's input size (a multiple of the patch size); scaling: "none" or "basam" (BA-SAM's
    attention in the global blocks). None keeps the adapter file's, else the native size and SAM's attention.
    Adapters, where there are any, are the only parameters that train (`mark_only_adapters_trainable`).
    """
    if variant not in SAM_BUILDERS:
        raise ValueError(f"SAM variant must be one of {sorted(SAM_BUILDERS)}, got {variant!r}")
    weights = sam_weights(variant, checkpoint, pretrained)
    sam = SAM_BUILDERS[variant]()
    if weights is not None:
        load_sam_weights(sam, weights, variant)
    if adapter is not None:
        stored, base = read_adapter_config(adapter)
        if config is not None and config != stored:
            raise ValueError(f"config {config} differs from the one stored in adapter {Path(adapter)}: {stored}")
        if (base["image_size"], base["scaling"]) != (sam.image_encoder.img_size, "none"):
            log.info("adapter %s was trained at image_size %d with scaling %s: the model follows it",
                     adapter, base["image_size"], base["scaling"])
        _set_geometry(sam, base["image_size"], base["scaling"])
        load_adapter(inject_adapters(sam, stored), adapter)
    elif config is not None:
        inject_adapters(sam, config)
    return _set_geometry(sam, image_size, scaling).eval()


def model_description(sam: Sam) -> str:
    """One line naming the model: "GaRA-SAM (embed 768, depth 12, input 1024)" or "SAM (...)"."""
    encoder = sam.image_encoder
    kind = "GaRA-SAM" if adapter_layers(sam) else "SAM"
    width = encoder.patch_embed.proj.out_channels
    return f"{kind} (embed {width}, depth {len(encoder.blocks)}, input {encoder.img_size})"


def _set_geometry(sam: Sam, image_size: int | None, scaling: str | None) -> Sam:
    """The encoder's input size (`set_image_size`) and attention (`set_scaling`), each only where it changes;
    None keeps it. SAM at its native size with scaling "none" thus keeps SAM's own modules."""
    if image_size is not None and image_size != sam.image_encoder.img_size:
        set_image_size(sam, image_size)
    if scaling is not None and scaling != model_scaling(sam):
        set_scaling(sam, scaling)
    return sam


def build_from_files(
    sam_variant: str | None = None,
    checkpoint: str | os.PathLike | None = None,
    adapter: str | os.PathLike | None = None,
    image_size: int | None = None,
) -> Sam:
    """The model a deployment names by files (the predictor's `from_files`, the node, `python -m gara_model.export`):
    SAM `checkpoint` of `sam_variant` (None: vit_b) with an optional `adapter` file, by `build_model`.

    Without a checkpoint the base is the embedded tiny SAM, whatever `sam_variant` names (logged), and without an
    adapter file either, its shipped GaRA adapter; adapter="none" (NO_ADAPTER) is plain SAM in every case.
    image_size: the encoder's input size (None = the adapter's, else the model's native one; the scaling stays the
    adapter's).
    """
    if checkpoint is None:
        if sam_variant not in (None, "tiny"):
            log.info("no SAM checkpoint: the embedded tiny SAM (sam_variant %r applies to a checkpoint only)",
                     sam_variant)
        sam_variant, adapter = "tiny", EMBEDDED_TINY_ADAPTER if adapter is None else adapter
    if str(adapter) == NO_ADAPTER:
        adapter = None
    return build_model(sam_variant or "vit_b", checkpoint, adapter=adapter, image_size=image_size)
