"""What the gates decide during training, measured in eval mode (deterministic gates) on a fixed probe batch, not on
the noisy training samples; logged to TensorBoard."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from segment_anything.modeling import Sam
from segment_anything.utils.transforms import ResizeLongestSide

from gara_model.adapters.gates import record_gates, summarize_gates
from gara_model.data.corruptions import corrupt, corruption_severity
from gara_model.engine.gate_adaptivity import gate_adaptivity


@dataclass
class GateProbe:
    """B preprocessed images (B x 3 x S x S, Sam.preprocess applied) with their scenes and conditions."""

    images: torch.Tensor
    scenes: list[int]
    conditions: list[str]


def build_gate_probe(model: Sam, dataset, corruptions: list[str], severity: int, scenes: int = 4, seed: int = 0) -> GateProbe:
    """The first `scenes` images of `dataset`, each as it is and under every one of `corruptions`."""
    transform = ResizeLongestSide(model.image_encoder.img_size)
    images, scene_ids, conditions = [], [], []
    for index in range(min(scenes, len(dataset))):
        sample = dataset[index]
        views = [(sample.meta["condition"], sample.image)] + [
            (name, corrupt(sample.image, name, corruption_severity(name, severity), seed=seed + index)) for name in corruptions]
        for condition, image in views:
            tensor = torch.as_tensor(transform.apply_image(image)).permute(2, 0, 1).float()
            images.append(model.preprocess(tensor[None].to(model.device))[0])
            scene_ids.append(index)
            conditions.append(condition)
    return GateProbe(torch.stack(images), scene_ids, conditions)


@torch.no_grad()
def log_gate_probe(writer, model: Sam, probe: GateProbe, step: int, batch_size: int = 8) -> None:
    """Per adapter: the mean and the spread across probe images of its gate logits, and the share of its decisions
    that vary across them; overall: the varying share, and per condition the share of adapters using the higher-rank
    set. The model is put back in the mode it was in."""
    was_training = model.training
    model.eval()
    records = []
    try:
        for chunk in probe.images.split(batch_size):
            with record_gates(model) as chunk_records:
                model.image_encoder(chunk)
            records.append(chunk_records)
    finally:
        model.train(was_training)
    if not records or not records[0]:
        return
    for position, (name, _) in enumerate(records[0]):
        logits = [_gate_logits(chunk_records[position][1]) for chunk_records in records]
        if logits[0] is not None:
            stacked = torch.cat(logits).float()  # probe images x gate outputs
            writer.add_scalar(f"gate_logits_mean/{_short(name)}", stacked.mean().item(), step)
            writer.add_scalar(f"gate_logits_spread/{_short(name)}", stacked.std(dim=0).mean().item(), step)
    summaries = [s for chunk_records in records for s in summarize_gates(chunk_records)]
    decisions = np.stack([s.decisions for s in summaries])
    adaptivity = gate_adaptivity(decisions, probe.conditions, probe.scenes)
    writer.add_scalar("gates/varying_share", adaptivity.varying_share, step)
    start = 0
    for name, sets, comps in summaries[0].layout:
        block = decisions[:, start : start + sets + comps]
        varying = np.minimum(block.mean(0), 1 - block.mean(0)) > 0
        writer.add_scalar(f"gate_varying/{_short(name)}", float(varying.mean()), step)
        start += sets + comps
    for condition in dict.fromkeys(probe.conditions):
        shares = [s.high_rank_share for s, c in zip(summaries, probe.conditions) if c == condition]
        writer.add_scalar(f"gates_rank_space_high/{condition}", float(np.mean(shares)), step)


def _gate_logits(gates) -> torch.Tensor | None:
    """B x (rank-set logits + component logits) of one adapter, None for a variant without gates."""
    parts = [t for t in (gates.rank_set_logits, gates.component_logits) if t is not None]
    return torch.cat(parts, dim=1) if parts else None


def _short(adapter_name: str) -> str:
    return adapter_name.removeprefix("image_encoder.").replace(".attn.qkv.adapters", "")
