"""Weight files: SAM checkpoints (.pth or .safetensors), adapter files (safetensors) and their atomic writing.

Files are told apart by their first bytes, never by their suffix. Every refusal is a `CheckpointError` (or a
FileNotFoundError) whose message is one line naming the file and what is wrong with it. This module reads, checks
and writes files and puts checked tensors into a model that fits them; it never changes a model's structure or
geometry (`build.build_model` applies what a file records).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import pickle
import re
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import safetensors.torch
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file
from segment_anything.modeling import Sam
from torch import nn

from gara_model.config import GaraConfig
from gara_model.modeling import adapter_layers, adapter_state_dict, gara_config, model_scaling

log = logging.getLogger(__name__)

ADAPTER_FORMAT = "gara-adapter-v2"
# Older formats that still load, with the GaraConfig values their files do not record.
LEGACY_ADAPTER_FORMATS = {"gara-adapter-v1": {"gating_feature": "mean"}}
OFFICIAL_CHECKPOINTS = {"vit_b": "sam_vit_b_01ec64.pth", "vit_l": "sam_vit_l_0b3195.pth", "vit_h": "sam_vit_h_4b8939.pth"}
_VARIANT_BY_EMBED_DIM = {768: "vit_b", 1024: "vit_l", 1280: "vit_h"}
_BASE_KEYS = ("embed_dim", "depth", "image_size", "scaling", "fingerprint")  # what base_description records


class CheckpointError(ValueError):
    """A weight file that cannot be used: unreadable, of another kind, inconsistent, or with bad values."""


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], object]) -> Path:
    """Writes `path` so that a crash or kill at any moment leaves either the old file or the whole new one.

    `write` fills a temporary file beside `path`; it is synced to disk and renamed over `path`, and the
    directory is synced so that the rename itself survives a power cut. The file gets the mode of any new
    file (0666 less the user's umask).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)  # a leftover of a killed write would keep its old mode
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
    return path


def save_safetensors(tensors: dict[str, torch.Tensor], path: str | os.PathLike, metadata: dict[str, str]) -> Path:
    """Tensors (contiguous, on the CPU) with string metadata, as one safetensors file written atomically."""
    return atomic_write(path, lambda f: f.write(safetensors.torch.save(tensors, metadata=metadata)))


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split())


def _file_format(path: Path, what: str) -> str:
    """"safetensors" or "torch" (the zip or pickle torch.save writes), from the file's first bytes."""
    with open(path, "rb") as f:
        head = f.read(9)
    # safetensors: an 8-byte little-endian header length, then the JSON header; checked first, since the length's
    # low byte can be 0x80, the pickle marker (a truncated file is caught when its header is read)
    if len(head) == 9 and head[8:9] == b"{":
        return "safetensors"
    if head[:4] == b"PK\x03\x04" or (head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05")):
        return "torch"
    raise CheckpointError(f"{what} {path} is neither a safetensors file nor a PyTorch checkpoint (it starts with {head!r})")


def read_checkpoint(path: str | os.PathLike, what: str) -> object:
    """What a safetensors file or a torch.save file holds, loaded without running code (weights_only=True).

    what: how messages name the file ("SAM checkpoint", "adapter file", ...).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path}")
    file_format = _file_format(path, what)
    try:
        if file_format == "safetensors":
            return load_file(path)
        with open(path, "rb") as f:  # a file object: torch.load would treat a *.safetensors path as safetensors
            return torch.load(f, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        # torch's text is several lines and suggests weights_only=False: never pass that on
        found = re.search(r"GLOBAL (\S+) was not an allowed global", str(err))
        if found:
            raise CheckpointError(f"{what} {path} could not be read: it holds pickled objects other than tensors "
                                  f"({found[1]}), which are never unpickled since that could run code") from None
        raise CheckpointError(f"{what} {path} could not be read (truncated or corrupt file?): its pickled data "
                              "is not plain tensors") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(f"{what} {path} could not be read (truncated or corrupt file?): {_one_line(err)}") from err


def read_state_dict(path: str | os.PathLike, what: str) -> dict[str, torch.Tensor]:
    """Tensors by name from a .pth (torch.load with weights_only=True) or .safetensors file, whatever its suffix."""
    state = read_checkpoint(path, what)
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{what} {path} is not a flat state dict of tensors")
    return state


def read_safetensors_metadata(path: str | os.PathLike, what: str) -> dict[str, str]:
    """The string metadata of a safetensors file (empty if it has none)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path}")
    if _file_format(path, what) != "safetensors":
        raise CheckpointError(f"{what} {path} is a PyTorch checkpoint, not a safetensors {what}")
    try:
        with safe_open(path, framework="pt") as f:
            return f.metadata() or {}
    except (SafetensorError, OSError) as err:
        raise CheckpointError(f"{what} {path} could not be read (truncated or corrupt file?): {_one_line(err)}") from err


def check_tensors(tensors: dict[str, torch.Tensor], expected: dict[str, torch.Tensor], path: Path, what: str) -> None:
    """Every tensor of `expected` (the model's) has its counterpart in `tensors` with the same shape, a dtype
    the model can take (floating point for floating-point weights, else the same dtype) and finite values."""
    for name, own in expected.items():
        tensor = tensors[name]
        if tensor.shape != own.shape:
            raise CheckpointError(f"{what} {path}: {name} has shape {tuple(tensor.shape)}, expected {tuple(own.shape)}")
        if tensor.is_floating_point() != own.is_floating_point() or (not own.is_floating_point() and tensor.dtype != own.dtype):
            kind = "floating point" if own.is_floating_point() else "the same dtype"
            raise CheckpointError(f"{what} {path}: tensor {name} has dtype {str(tensor.dtype).removeprefix('torch.')} "
                                  f"where the model expects {kind} ({str(own.dtype).removeprefix('torch.')})")
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            bad = int((~torch.isfinite(tensor)).sum())
            raise CheckpointError(f"{what} {path}: tensor {name} has {bad} non-finite values (NaN or inf) of {tensor.numel()}")


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
        raise CheckpointError(f"SAM checkpoint {path} does not fit SAM variant {variant!r}: {', '.join(problems)}{hint}. Expected {expected}.")
    check_tensors(state, own, path, "SAM checkpoint")
    sam.load_state_dict(state)


def base_description(sam: Sam) -> dict:
    """What an adapter must match: the encoder's shape and a fingerprint of its (frozen) patch-embedding weights."""
    encoder = sam.image_encoder
    weight = encoder.patch_embed.proj.weight.detach().to("cpu", torch.float32).contiguous()
    return {
        "embed_dim": int(weight.shape[0]),
        "depth": len(encoder.blocks),
        "image_size": int(encoder.img_size),
        "scaling": model_scaling(sam),
        "fingerprint": hashlib.sha256(weight.numpy().tobytes()).hexdigest()[:16],
    }


def save_adapter(model: nn.Module, path: str | os.PathLike, metadata: dict[str, str] | None = None) -> Path:
    """Writes the adapter parameters and their config atomically (a kill mid-write leaves the old file intact).

    metadata: extra string entries (the trainer records the step).
    """
    tensors = {name: p.detach().to("cpu").contiguous() for name, p in adapter_state_dict(model).items()}
    return save_safetensors(tensors, path, {
        "format": ADAPTER_FORMAT,
        "gara_config": gara_config(model).to_json(),
        "base": json.dumps(base_description(model)),
        **(metadata or {}),
    })


def read_adapter_config(path: str | os.PathLike) -> tuple[GaraConfig, dict]:
    """(GaraConfig, base description) stored in an adapter file."""
    path = Path(path)
    metadata = read_safetensors_metadata(path, "adapter file")
    file_format = metadata.get("format")
    if file_format != ADAPTER_FORMAT and file_format not in LEGACY_ADAPTER_FORMATS:
        raise CheckpointError(f"{path} is not a gara adapter file (format {file_format!r}, expected {ADAPTER_FORMAT!r})")
    for key in ("gara_config", "base"):
        if key not in metadata:
            raise CheckpointError(f"adapter file {path}: its metadata has no {key!r}")
    try:
        config = GaraConfig.from_json(metadata["gara_config"], LEGACY_ADAPTER_FORMATS.get(file_format))
    except (ValueError, TypeError) as err:
        raise CheckpointError(f"adapter file {path}: metadata 'gara_config' is not a valid GaraConfig JSON: {_one_line(err)}") from err
    try:
        base = json.loads(metadata["base"])
    except ValueError as err:
        raise CheckpointError(f"adapter file {path}: metadata 'base' is not JSON: {_one_line(err)}") from err
    missing = [key for key in _BASE_KEYS if key not in base] if isinstance(base, dict) else list(_BASE_KEYS)
    if missing:
        raise CheckpointError(f"adapter file {path}: metadata 'base' (the SAM it was trained on) lacks {', '.join(missing)}")
    return config, base


def load_adapter(model: Sam, path: str | os.PathLike, allow_other_base: bool = False) -> Sam:
    """Puts an adapter file's tensors into `model`, which must already be what the file was trained on: the same
    base SAM (shape and weights' fingerprint; allow_other_base=True skips the fingerprint), input size and scaling,
    and adapters of the file's config. Checks the tensors (names, shapes, dtypes, finite values) before copying.

    The model is never reshaped here: `build.build_model(adapter=...)` assembles one from what the file records.
    """
    path = Path(path)
    config, base = read_adapter_config(path)
    tensors = read_state_dict(path, "adapter file")
    own_base = base_description(model)
    applies_it = "build the model with build_model(adapter=...), which applies the file's"
    for keys, remedy in ((("embed_dim", "depth"), "wrong base model"), (("image_size", "scaling"), applies_it)):
        if any(base[k] != own_base[k] for k in keys):
            in_file, in_model = (", ".join(f"{k}={description[k]}" for k in keys) for description in (base, own_base))
            raise CheckpointError(f"adapter {path} was trained with {in_file}, but this model has {in_model}: {remedy}")
    if base["fingerprint"] != own_base["fingerprint"] and not allow_other_base:
        raise CheckpointError(
            f"adapter {path} was trained on other base weights (fingerprint {base['fingerprint']}, this model "
            f"{own_base['fingerprint']}): load the SAM checkpoint it was trained on, or pass allow_other_base=True"
        )
    if not adapter_layers(model):
        raise CheckpointError(f"adapter {path}: this model has no GaRA adapters; build it with "
                              "build_model(adapter=...), which injects the file's")
    if gara_config(model) != config:
        raise CheckpointError(f"adapter {path} has config {config}, but the model's adapters have {gara_config(model)}")
    own = adapter_state_dict(model)
    if tensors.keys() != own.keys():
        raise CheckpointError(f"adapter {path} holds {len(tensors)} tensors, the model expects {len(own)}: file and config disagree")
    check_tensors(tensors, own, path, "adapter file")
    with torch.no_grad():
        for name, param in own.items():
            param.copy_(tensors[name])
    return model
