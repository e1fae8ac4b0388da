"""Device and precision choice: CUDA with autocast where it exists, the CPU in fp32 otherwise; freeing device memory."""

from __future__ import annotations

import contextlib
import gc

import torch

PRECISIONS = {"auto", "fp32", "fp16", "bf16"}


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """"auto" -> cuda if available else cpu; a requested but missing CUDA is a clear error."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device} was requested but CUDA is not available here (use 'cpu' or 'auto')")
    return device


def autocast(device: torch.device, precision: str = "auto") -> contextlib.AbstractContextManager:
    """fp16 autocast on CUDA for "auto"; plain fp32 on the CPU for "auto" (bf16 autocast is much slower on CPUs)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {sorted(PRECISIONS)}, got {precision!r}")
    if precision == "auto":
        precision = "fp16" if device.type == "cuda" else "fp32"
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.float16 if precision == "fp16" else torch.bfloat16)


def release_memory(device: torch.device) -> None:
    """Hands the memory of dropped tensors back to the device: call after dropping the last reference to a model.

    PyTorch keeps freed CUDA blocks cached for reuse, so without this other processes on the GPU cannot use them.
    """
    gc.collect()  # a model's modules and hooks form reference cycles
    if device.type == "cuda":
        torch.cuda.empty_cache()
