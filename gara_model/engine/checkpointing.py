"""The trainer's checkpoint: the weights file users take from the run directory and the optimizer state that
continues it, kept as one consistent unit.

In the run directory:
  adapter.safetensors   the adapters (sam.safetensors, the whole SAM, with model.train_base); its metadata
                        records the step it was saved at
  train_state_step<N>.pt  optimizer and grad-scaler state after step N
A checkpoint at step N writes train_state_step<N>.pt, then replaces the weights file (the commit: one atomic
rename), then deletes the older train states. A kill at any moment leaves the weights file of the last
complete checkpoint and the train state that belongs to it; --resume checks that the two agree.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from segment_anything.modeling import Sam

from gara_model.checkpoint import (
    CheckpointError,
    atomic_write,
    load_adapter,
    load_sam_weights,
    read_checkpoint,
    read_safetensors_metadata,
    save_adapter,
    save_safetensors,
)
from gara_model.engine.config import TrainConfig


ADAPTER_WEIGHTS, BASE_WEIGHTS = "adapter.safetensors", "sam.safetensors"


def weights_path(cfg: TrainConfig, run_dir: Path) -> Path:
    """The file a run delivers: its adapters, or with train_base the whole SAM."""
    return run_dir / (BASE_WEIGHTS if cfg.model.train_base else ADAPTER_WEIGHTS)


def train_state_path(run_dir: Path, step: int) -> Path:
    return run_dir / f"train_state_step{step}.pt"


def checkpoint_files(run_dir: Path) -> list[Path]:
    """The checkpoint files `run_dir` holds, of either kind of run (adapters or train_base): what a fresh run in it
    would replace or delete."""
    weights = [run_dir / name for name in (ADAPTER_WEIGHTS, BASE_WEIGHTS) if (run_dir / name).is_file()]
    return weights + sorted(run_dir.glob("train_state_step*.pt"))


def save_checkpoint(model: Sam, optimizer, scaler, step: int, cfg: TrainConfig, run_dir: Path) -> None:
    """The train state of `step`, then the weights that commit it (both atomic), then older train states go."""
    state_file = train_state_path(run_dir, step)
    state = {"step": step, "optimizer": optimizer.state_dict(), "scaler": scaler.state_dict()}
    atomic_write(state_file, lambda f: torch.save(state, f))
    weights = weights_path(cfg, run_dir)
    if cfg.model.train_base:
        tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        save_safetensors(tensors, weights, {"train_config": json.dumps(cfg.to_dict()), "step": str(step)})
    else:
        save_adapter(model, weights, {"step": str(step)})
    for older in run_dir.glob("train_state_step*.pt"):
        if older != state_file:
            older.unlink()


def resume(model: Sam, optimizer, scaler, cfg: TrainConfig, run_dir: Path) -> int:
    """Loads the last checkpoint of run_dir (weights and the train state of their step); returns that step."""
    weights = weights_path(cfg, run_dir)
    if not weights.is_file():
        raise FileNotFoundError(f"--resume: no checkpoint in {run_dir} (expected {weights.name})")
    recorded = read_safetensors_metadata(weights, "weights file").get("step", "")
    if not recorded.isdigit():
        raise CheckpointError(f"--resume: {weights} records no training step (saved by an older gara or not by the "
                              "trainer), so no train state can be matched to it")
    step = int(recorded)
    state_file = train_state_path(run_dir, step)
    if not state_file.is_file():
        raise CheckpointError(f"--resume: {weights} is at step {step}, but its train state {state_file.name} is missing")
    state = read_checkpoint(state_file, "train state")
    if not isinstance(state, dict) or not {"step", "optimizer", "scaler"} <= state.keys():
        raise CheckpointError(f"train state {state_file} does not hold step, optimizer and scaler")
    if state["step"] != step:
        raise CheckpointError(f"--resume: {weights} is at step {step}, but {state_file} is at step {state['step']}: "
                              "they are not one checkpoint")
    if cfg.model.train_base:
        load_sam_weights(model, weights, cfg.model.sam)
    else:
        load_adapter(model, weights)
    try:
        optimizer.load_state_dict(state["optimizer"])
        scaler.load_state_dict(state["scaler"])
    except (ValueError, KeyError) as err:
        raise CheckpointError(f"train state {state_file} does not fit this run's optimizer: {' '.join(str(err).split())}") from err
    return step
