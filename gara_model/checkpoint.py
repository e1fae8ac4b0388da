"""Safe loading of SAM checkpoints and saving/loading of adapter-only files (safetensors)."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import pickle
import zipfile
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from segment_anything.modeling import Sam
from torch import nn

from gara_model.config import GaraConfig
from gara_model.modeling import adapter_layers, adapter_state_dict, gara_config, inject_adapters
from gara_model.modeling.basam import BiasModeMask
from gara_model.modeling.resolution import set_image_size

log = logging.getLogger(__name__)

ADAPTER_FORMAT = "gara-adapter-v2"
# Older formats that still load, with the GaraConfig values their files do not record.
LEGACY_ADAPTER_FORMATS = {"gara-adapter-v1": {"gating_feature": "mean"}}
OFFICIAL_CHECKPOINTS = {"vit_b": "sam_vit_b_01ec64.pth", "vit_l": "sam_vit_l_0b3195.pth", "vit_h": "sam_vit_h_4b8939.pth"}
_VARIANT_BY_EMBED_DIM = {768: "vit_b", 1024: "vit_l", 1280: "vit_h"}


def read_state_dict(path: str | os.PathLike, what: str) -> dict[str, torch.Tensor]:
    """Tensors from a .pth (torch.load with weights_only=True) or .safetensors file, with errors that name the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path}")
    try:
        if path.suffix == ".safetensors":
            state = load_file(path)
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, zipfile.BadZipFile, SafetensorError, OSError, ValueError) as err:
        raise ValueError(f"{what} {path} could not be read (truncated or corrupt file?): {err}") from err
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{what} {path} is not a flat state dict of tensors")
    return state


def load_sam_weights(sam: Sam, path: str | os.PathLike, variant: str) -> None:
    """Loads a SAM state dict (an official sam_vit_*.pth, or our own .safetensors) into a freshly built SAM."""
    state = read_state_dict(path, "SAM checkpoint")
    own = sam.state_dict()
    mismatched = [k for k in own.keys() & state.keys() if own[k].shape != state[k].shape]
    missing, unexpected = own.keys() - state.keys(), state.keys() - own.keys()
    if mismatched or missing or unexpected:
        problems = []
        if mismatched:
            k = sorted(mismatched)[0]
            problems.append(f"{len(mismatched)} shape mismatches (e.g. {k}: {tuple(state[k].shape)} in the file, {tuple(own[k].shape)} in {variant})")
        if missing:
            problems.append(f"{len(missing)} missing keys (e.g. {sorted(missing)[0]})")
        if unexpected:
            problems.append(f"{len(unexpected)} unexpected keys (e.g. {sorted(unexpected)[0]})")
        patch = state.get("image_encoder.patch_embed.proj.weight")
        guess = _VARIANT_BY_EMBED_DIM.get(patch.shape[0]) if patch is not None else None
        hint = f"; it looks like a {guess} checkpoint" if guess and guess != variant else ""
        expected = OFFICIAL_CHECKPOINTS.get(variant, f"a {variant} SAM state dict")
        raise ValueError(f"SAM checkpoint {path} does not fit SAM variant {variant!r}: {', '.join(problems)}{hint}. Expected {expected}.")
    sam.load_state_dict(state)


def base_description(sam: Sam) -> dict:
    """What an adapter must match: the encoder's shape and a fingerprint of its (frozen) patch-embedding weights."""
    encoder = sam.image_encoder
    weight = encoder.patch_embed.proj.weight.detach().to("cpu", torch.float32).contiguous()
    return {
        "embed_dim": int(weight.shape[0]),
        "depth": len(encoder.blocks),
        "image_size": int(encoder.img_size),
        "scaling": "basam" if any(isinstance(m, BiasModeMask) for m in sam.modules()) else "none",
        "fingerprint": hashlib.sha256(weight.numpy().tobytes()).hexdigest()[:16],
    }


def save_adapter(model: nn.Module, path: str | os.PathLike) -> Path:
    """Writes the adapter parameters and their config atomically (a kill mid-write leaves the old file intact)."""
    path = Path(path)
    tensors = {name: p.detach().to("cpu").contiguous() for name, p in adapter_state_dict(model).items()}
    metadata = {
        "format": ADAPTER_FORMAT,
        "gara_config": gara_config(model).to_json(),
        "base": json.dumps(base_description(model)),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, tmp, metadata=metadata)
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return path


def read_adapter_config(path: str | os.PathLike) -> tuple[GaraConfig, dict]:
    """(GaraConfig, base description) stored in an adapter file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"adapter file not found: {path}")
    try:
        with safe_open(path, framework="pt") as f:
            metadata = f.metadata() or {}
    except (SafetensorError, OSError) as err:
        raise ValueError(f"adapter file {path} could not be read (truncated or corrupt file?): {err}") from err
    file_format = metadata.get("format")
    if file_format != ADAPTER_FORMAT and file_format not in LEGACY_ADAPTER_FORMATS:
        raise ValueError(f"{path} is not a gara adapter file (format {file_format!r}, expected {ADAPTER_FORMAT!r})")
    absent = LEGACY_ADAPTER_FORMATS.get(file_format, {})
    return GaraConfig.from_json(metadata["gara_config"], absent), json.loads(metadata["base"])


def load_adapter(model: Sam, path: str | os.PathLike, allow_other_base: bool = False) -> Sam:
    """Loads an adapter file onto a SAM model (injecting the adapters if it has none yet); checks the base model.

    The model takes the image size and scaling the adapter was trained at (`set_image_size`).
    """
    config, base = read_adapter_config(path)
    own_base = base_description(model)
    if (base["image_size"], base["scaling"]) != (own_base["image_size"], own_base["scaling"]):
        log.info("adapter %s was trained at image_size %d with scaling %s: the model follows it",
                 path, base["image_size"], base["scaling"])
        set_image_size(model, base["image_size"], base["scaling"])
    shape_keys = ("embed_dim", "depth")
    if any(base[k] != own_base[k] for k in shape_keys):
        raise ValueError(
            f"adapter {path} was trained on a SAM with {', '.join(f'{k}={base[k]}' for k in shape_keys)}, "
            f"but this model has {', '.join(f'{k}={own_base[k]}' for k in shape_keys)}: wrong base model"
        )
    if base["fingerprint"] != own_base["fingerprint"] and not allow_other_base:
        raise ValueError(
            f"adapter {path} was trained on other base weights (fingerprint {base['fingerprint']}, this model "
            f"{own_base['fingerprint']}): load the SAM checkpoint it was trained on, or pass allow_other_base=True"
        )
    if not adapter_layers(model):
        inject_adapters(model, config)
    elif gara_config(model) != config:
        raise ValueError(f"adapter {path} has config {config}, but the model's adapters have {gara_config(model)}")
    tensors = read_state_dict(path, "adapter file")
    own = adapter_state_dict(model)
    if tensors.keys() != own.keys():
        raise ValueError(f"adapter {path} holds {len(tensors)} tensors, the model expects {len(own)}: file and config disagree")
    with torch.no_grad():
        for name, param in own.items():
            if tensors[name].shape != param.shape:
                raise ValueError(f"adapter {path}: {name} has shape {tuple(tensors[name].shape)}, expected {tuple(param.shape)}")
            param.copy_(tensors[name])
    return model
