"""Training step: adapter-only (GaRA) vs a fully fine-tuned SAM on the same batch; step time and peak memory.

    .venv/bin/python -m bench.train_step [--tiny] [--repeats 2] [--steps 2] [--batch-size B] [--threads N]

Each measurement runs in its own subprocess (peak RSS is per process); the two variants alternate.
"""

from __future__ import annotations

import json
import resource
import statistics
import subprocess
import sys
from pathlib import Path

import torch

from bench.common import REPO, parser, ratio, sam_variant, setup, summary, timed
from gara_model.engine.config import ModelConfig, TrainConfig
from gara_model.engine.batch import TrainItem
from gara_model.engine.trainer import batch_loss, build_training_model
from gara_model.modeling import count_parameters

VARIANTS = {"adapters": False, "full": True}  # name -> ModelConfig.train_base


def rss_mb() -> float:
    """Current resident set size of this process."""
    return int(Path("/proc/self/statm").read_text().split()[1]) * resource.getpagesize() / 2**20


def synthetic_batch(size: int, batch_size: int, objects: int = 4, points: int = 3) -> list[TrainItem]:
    """Random images (3 x S x S), masks (N x S x S) and point prompts (N x K x 2): shapes as the trainer sees them."""
    generator = torch.Generator().manual_seed(0)
    return [
        TrainItem(
            image=torch.rand(3, size, size, generator=generator) * 255,
            masks=(torch.rand(objects, size, size, generator=generator) > 0.5).float(),
            points=torch.rand(objects, points, 2, generator=generator) * size,
            labels=torch.ones(objects, points, dtype=torch.int64),
            boxes=None,
            meta={},
        )
        for _ in range(batch_size)
    ]


def child(variant: str, sam: str, batch_size: int, steps: int, device: torch.device) -> dict:
    """One warm-up step and `steps` timed steps of one variant in this process; times, memory, parameters."""
    cfg = TrainConfig(model=ModelConfig(sam=sam, train_base=VARIANTS[variant]), batch_size=batch_size)
    model = build_training_model(cfg).to(device).train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.optim.weight_decay)
    batch = synthetic_batch(model.image_encoder.img_size, batch_size)
    before = rss_mb()

    def step():
        loss, _ = batch_loss(model, model.image_encoder, batch, cfg, device)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    times = [timed(step, device) for _ in range(steps + 1)][1:]
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux
    cuda_peak = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None
    return {"times": times, "peak_rss_mb": peak, "model_rss_mb": before, "cuda_peak_mb": cuda_peak,
            "trainable": count_parameters(model).trainable}


def main() -> None:
    p = parser(__doc__, repeats=2)
    p.add_argument("--steps", type=int, default=2, help="timed steps per subprocess (after one warm-up step)")
    p.add_argument("--batch-size", type=int, default=None, help="images per step (default: 8 tiny, 1 ViT-B)")
    p.add_argument("--child", choices=list(VARIANTS), help="internal: run one variant here, print JSON")
    args, device = setup(p)
    batch_size = args.batch_size or (8 if args.tiny else 1)
    if args.child:
        print(json.dumps(child(args.child, sam_variant(args), batch_size, args.steps, device)))
        return
    print(f"{sam_variant(args)}, batch of {batch_size} images x 4 objects, {args.steps} timed steps per process")
    results: dict[str, list[dict]] = {name: [] for name in VARIANTS}
    for _ in range(args.repeats):
        for name in VARIANTS:
            command = [sys.executable, "-m", "bench.train_step", "--child", name, "--device", args.device,
                       "--steps", str(args.steps), "--batch-size", str(batch_size)]
            command += ["--tiny"] * args.tiny + (["--threads", str(args.threads)] if args.threads else [])
            out = subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=True).stdout
            results[name].append(json.loads(out.strip().splitlines()[-1]))
    times = {name: [t for r in runs for t in r["times"]] for name, runs in results.items()}
    for name, runs in results.items():
        peak = max(r["peak_rss_mb"] for r in runs)
        model = statistics.median(r["model_rss_mb"] for r in runs)
        cuda = f", CUDA peak {max(r['cuda_peak_mb'] for r in runs):.0f} MB" if runs[0]["cuda_peak_mb"] is not None else ""
        print(f"{name:9s} trainable {runs[0]['trainable']:>11,}  step {summary(times[name]):>34s}  "
              f"peak RSS {peak:7.0f} MB (model and batch {model:.0f} MB, training {peak - model:.0f} MB){cuda}")
    print(f"adapters / full: step time {ratio(times['adapters'], times['full'])}, peak RSS "
          f"{max(r['peak_rss_mb'] for r in results['adapters']) / max(r['peak_rss_mb'] for r in results['full']):.3f}")


if __name__ == "__main__":
    main()
