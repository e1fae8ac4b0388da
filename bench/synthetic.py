"""Synthetic scenes per minute (`gara_model.data.SyntheticInstances`): training on them must not wait for them.

    .venv/bin/python -m bench.synthetic [--scenes 300] [--image-size 128] [--repeats 3]

Target: more than 2000 scenes of 128 x 128 per minute in one process (docs/data.md, "Synthetic scenes").
"""

from __future__ import annotations

import argparse
import statistics

import torch

from bench.common import machine_info, summary, timed
from gara_model.data import SyntheticInstances

TARGET_PER_MINUTE = 2000


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--scenes", type=int, default=300, help="scenes rendered per timed round")
    p.add_argument("--image-size", type=int, default=128)
    p.add_argument("--repeats", type=int, default=3, help="timed rounds after one warm-up round")
    args = p.parse_args()
    cpu = torch.device("cpu")
    print(machine_info(cpu))
    rounds = iter(range(args.repeats + 1))  # a fresh seed per round: no scene is rendered twice

    def render_all() -> None:
        dataset = SyntheticInstances(size=args.scenes, image_size=args.image_size, seed=next(rounds))
        for i in range(len(dataset)):
            dataset[i]

    render_all()  # warm-up: imports, caches
    times = [timed(render_all, cpu) for _ in range(args.repeats)]
    per_minute = [60 * args.scenes / t for t in times]
    median = statistics.median(per_minute)
    print(f"{args.scenes} scenes of {args.image_size} x {args.image_size}: {summary(times)} per round; "
          f"{median:,.0f} scenes per minute (median; min {min(per_minute):,.0f}, max {max(per_minute):,.0f}); "
          f"target > {TARGET_PER_MINUTE:,}: {'met' if median > TARGET_PER_MINUTE else 'missed'}")


if __name__ == "__main__":
    main()
