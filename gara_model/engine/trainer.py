"""The training loop: adapters (or, for the tiny base, all of SAM) on a plain segmentation loss."""

from __future__ import annotations

import contextlib
import copy
import logging
import math
from pathlib import Path

import torch
import torch.nn.functional as F
import yaml
from segment_anything.modeling import Sam
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader
from tqdm import tqdm

from gara_model.adapters.gates import record_gates, summarize_gates
from gara_model.build import build_model
from gara_model.checkpoint import atomic_write
from gara_model.data.build import dataset_from_spec
from gara_model.data.corrupted import CorruptionMix
from gara_model.device import autocast
from gara_model.engine.batch import StepBatchSampler, TrainItem, TrainItems
from gara_model.engine.checkpointing import checkpoint_files, resume, save_checkpoint
from gara_model.engine.config import TrainConfig
from gara_model.engine.distributed import Distributed, cleanup_distributed, setup_distributed
from gara_model.engine.evaluation import evaluate
from gara_model.engine.gate_probe import build_gate_probe, log_gate_probe
from gara_model.engine.losses import segmentation_loss
from gara_model.engine.optim import build_optimizer, set_learning_rate
from gara_model.engine.report import write_report
from gara_model.modeling import count_parameters, set_adapters_enabled
from gara_model.predictor import GaraPredictor

log = logging.getLogger(__name__)


def build_training_model(cfg: TrainConfig) -> Sam:
    """The model to train (`build_model`): the pretrained base SAM with fresh adapters, or (train_base) the whole
    SAM, from cfg.model.checkpoint or from scratch, all of it or only cfg.model.train_only."""
    train_base = cfg.model.train_base
    model = build_model(cfg.model.sam, cfg.model.checkpoint, config=None if train_base else cfg.adapter,
                        image_size=cfg.model.image_size, scaling=cfg.model.scaling, pretrained=not train_base)
    if train_base:
        model.requires_grad_(cfg.model.train_only is None)
        if cfg.model.train_only is not None:
            model.get_submodule(cfg.model.train_only).requires_grad_(True)
    return model


def build_train_items(cfg: TrainConfig, image_size: int) -> TrainItems:
    """The training datasets, concatenated, with prompts sampled per draw and the draw's corruption."""
    datasets = [dataset_from_spec(spec) for spec in cfg.data.train]
    dataset = datasets[0] if len(datasets) == 1 else torch.utils.data.ConcatDataset(datasets)
    corruptions = (CorruptionMix(tuple(cfg.data.corruptions), cfg.data.corruption_severity, cfg.data.clear_fraction)
                   if cfg.data.corruptions else None)
    return TrainItems(dataset, image_size, cfg.data.max_objects, cfg.data.prompt_mode, cfg.data.points_per_object,
                      cfg.data.box_jitter, cfg.seed, corruptions)


def batch_loss(model: Sam, encoder: torch.nn.Module, batch: list[TrainItem], cfg: TrainConfig, device: torch.device):
    """Encoder once for the batch; the decoder per image (it takes one image embedding per call)."""
    size = model.image_encoder.img_size
    images = torch.stack([model.preprocess(item.image.to(device)) for item in batch])  # B x 3 x S x S
    features = encoder(images)  # B x C x h x w
    logits, targets, predicted_iou = [], [], []
    for i, item in enumerate(batch):
        points = None if item.points is None else (item.points.to(device), item.labels.to(device))
        boxes = None if item.boxes is None else item.boxes.to(device)
        sparse, dense = model.prompt_encoder(points=points, boxes=boxes, masks=None)
        low_res, iou = model.mask_decoder(
            image_embeddings=features[i : i + 1],
            image_pe=model.prompt_encoder.get_dense_pe(),
            sparse_prompt_embeddings=sparse,
            dense_prompt_embeddings=dense,
            multimask_output=False,
        )
        logits.append(F.interpolate(low_res.float(), (size, size), mode="bilinear", align_corners=False)[:, 0])
        targets.append(item.masks.to(device))
        predicted_iou.append(iou.float()[:, 0])
    return segmentation_loss(torch.cat(logits), torch.cat(targets), cfg.optim.focal_weight, cfg.optim.dice_weight,
                             torch.cat(predicted_iou), cfg.optim.iou_weight)


def log_step(writer, step: int, parts: dict, grad_norm: torch.Tensor, optimizer, records) -> None:
    """The loss parts, gradient norm and learning rate of `step`, and the training samples' gates (with their
    Gumbel noise): the share using the higher-rank set, the active components."""
    for name, value in parts.items():
        writer.add_scalar(f"train/{name}", value, step)
    writer.add_scalar("train/grad_norm", grad_norm.item(), step)
    writer.add_scalar("train/lr", optimizer.param_groups[0]["lr"], step)
    summaries = summarize_gates(records)
    if summaries:
        writer.add_scalar("gates_train/high_rank_share", sum(s.high_rank_share for s in summaries) / len(summaries), step)
        writer.add_scalar("gates_train/mean_active_components", sum(s.mean_active_components for s in summaries) / len(summaries), step)


def evaluate_run(model: Sam, cfg: TrainConfig, run_dir: Path, device: torch.device) -> Path:
    """The trained model next to its frozen base on cfg.data.eval; writes run_dir/eval/results.*"""
    predictors = {}
    if not cfg.model.train_base:
        base = copy.deepcopy(model)
        set_adapters_enabled(base, False)
        predictors["SAM (frozen)"] = GaraPredictor(base, device=device)
    predictors[cfg.adapter.variant if not cfg.model.train_base else "SAM"] = GaraPredictor(model, device=device)
    datasets = {f"{spec['name']}{spec.get('size', '')}": dataset_from_spec(spec) for spec in cfg.data.eval}
    evaluation = evaluate(predictors, datasets, cfg.data.eval_corruptions, cfg.data.eval_severity, seed=cfg.seed)
    report = write_report(evaluation, run_dir / "eval")
    log.info("evaluation:\n%s", report.read_text())
    return report


def prepare_run_dir(cfg: TrainConfig, dist_env: Distributed) -> Path:
    """cfg.output_dir, created. A fresh run (no resume) into a directory that holds a checkpoint is refused in
    one line, since it would replace that checkpoint, unless cfg.overwrite: then the old checkpoint is deleted
    first, so that the directory never pairs the new run's config with the old run's weights."""
    run_dir = Path(cfg.output_dir)
    existing = [] if cfg.resume else checkpoint_files(run_dir)
    if existing and not cfg.overwrite:
        raise FileExistsError(f"{run_dir} already holds a checkpoint ({', '.join(p.name for p in existing)}): continue "
                              "it with --resume, or set overwrite=true to delete it and start afresh")
    run_dir.mkdir(parents=True, exist_ok=True)
    if existing and dist_env.is_main:
        log.info("overwrite=true: deleting the checkpoint in %s (%s)", run_dir, ", ".join(p.name for p in existing))
        for path in existing:
            path.unlink()
    return run_dir


def save_config(cfg: TrainConfig, run_dir: Path) -> Path:
    """The resolved config as run_dir/config.yaml, written whole or not at all; `--config` reads it back."""
    text = yaml.safe_dump(cfg.to_dict(), sort_keys=False)
    return atomic_write(run_dir / "config.yaml", lambda f: f.write(text.encode()))


def train_step(model: Sam, encoder: torch.nn.Module, batch: list[TrainItem], optimizer, scaler, cfg: TrainConfig,
               step: int, dist_env: Distributed):
    """One optimizer step on `batch`; returns (loss parts, the gates recorded, the gradient norm before clipping).
    A non-finite loss ends the run with a FloatingPointError showing the loss parts."""
    torch.manual_seed(cfg.seed * 1_000_003 + step * dist_env.world_size + dist_env.rank)  # Gumbel noise per step
    with record_gates(model) as records, autocast(dist_env.device, cfg.precision):
        loss, parts = batch_loss(model, encoder, batch, cfg, dist_env.device)
    if not math.isfinite(parts["loss"]):
        raise FloatingPointError(f"non-finite loss at step {step}: {parts}")
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    scaler.unscale_(optimizer)
    trainable = [p for p in model.parameters() if p.requires_grad]
    grad_norm = torch.nn.utils.clip_grad_norm_(trainable, cfg.optim.grad_clip)
    set_learning_rate(optimizer, step, cfg)
    scaler.step(optimizer)
    scaler.update()
    return parts, records, grad_norm


def do_train(cfg: TrainConfig, model: Sam, run_dir: Path, dist_env: Distributed) -> None:
    """The step loop from the last checkpoint (cfg.resume) or step 0 to cfg.steps, with TensorBoard logs, gate
    probes and checkpoints (every cfg.save_every steps and at the end) from the main process."""
    from torch.utils.tensorboard import SummaryWriter  # imported late: it takes seconds

    device = dist_env.device
    optimizer = build_optimizer(model, cfg)
    scaler = torch.amp.GradScaler(device.type, enabled=device.type == "cuda" and cfg.precision in ("auto", "fp16"))
    start = resume(model, optimizer, scaler, cfg, run_dir) if cfg.resume else 0
    encoder = model.image_encoder
    if dist_env.world_size > 1:
        encoder = DistributedDataParallel(encoder, device_ids=[device.index] if device.type == "cuda" else None)
    items = build_train_items(cfg, model.image_encoder.img_size)
    sampler = StepBatchSampler(len(items), cfg.batch_size, start, cfg.steps, cfg.seed, dist_env.rank, dist_env.world_size)
    loader = DataLoader(items, batch_sampler=sampler, collate_fn=list, num_workers=cfg.data.num_workers)
    writer = SummaryWriter(run_dir / "tb") if dist_env.is_main else None
    probe = None
    if writer and not cfg.model.train_base:
        probe = build_gate_probe(model, dataset_from_spec(cfg.data.eval[0]), cfg.data.eval_corruptions, cfg.data.eval_severity)
    if dist_env.is_main:
        save_config(cfg, run_dir)
        log.info("training %s on %s: %s", "the whole SAM" if cfg.model.train_base else "GaRA adapters", device, count_parameters(model))
    progress = tqdm(total=cfg.steps, initial=start, desc="train", disable=not dist_env.is_main, dynamic_ncols=True)
    with writer if writer else contextlib.nullcontext(), progress:  # both closed however the loop ends
        for step, batch in enumerate(loader, start=start):
            parts, records, grad_norm = train_step(model, encoder, batch, optimizer, scaler, cfg, step, dist_env)
            done = step + 1
            progress.update(1)
            progress.set_postfix(loss=f"{parts['loss']:.4f}", dice=f"{parts['dice']:.3f}")
            if writer and done % cfg.log_every == 0:
                log_step(writer, done, parts, grad_norm, optimizer, records)
            if probe is not None and done % cfg.probe_every == 0:
                log_gate_probe(writer, model, probe, done, cfg.batch_size)
            if dist_env.is_main and (done % cfg.save_every == 0 or done == cfg.steps):
                save_checkpoint(model, optimizer, scaler, done, cfg, run_dir)


def train(cfg: TrainConfig) -> Path:
    """Runs (or resumes) training, then evaluates the result (cfg.evaluate); returns the run directory with the
    weights, config and logs. The distributed process group is released however the run ends."""
    dist_env = setup_distributed(cfg.device)
    try:
        run_dir = prepare_run_dir(cfg, dist_env)
        torch.manual_seed(cfg.seed)
        model = build_training_model(cfg).to(dist_env.device).train()
        do_train(cfg, model, run_dir, dist_env)
        if cfg.evaluate and dist_env.is_main:
            evaluate_run(model, cfg, run_dir, dist_env.device)
    finally:
        cleanup_distributed()
    return run_dir
