"""Track mode against persist and per-frame oracle prompts, on moving synthetic sequences: mean mask IoU.

    .venv/bin/python -m bench.tracking [--speeds 1,2,4,8,16] [--sequences 10] [--frames 100] [--threads 1]

Each sequence (gara_model.data.sequences.moving_sequence, 128 x 128, one object, or two to three that cross and
occlude each other, translating at the given speed in pixels per frame and scaling between 0.8 and 1.25 times,
clear for the first half and snow for the second) is
prompted once, at frame 0, with each object's true box and most interior pixel (a detector plus a click). Then:
- oracle: every frame prompted again with the true box and interior point (the upper bound of prompting);
- persist: the frame-0 prompt on every frame (persist mode);
- track variants (gara_ros.tracking.Tracker, lost checks on): each frame prompted from the object's own previous
  result, as the node's track mode does; a lost object has no mask (IoU 0) until the end.
The IoU is over every frame in which the object is visible (a fully hidden object's frames are left out).
One image-encoder pass per frame serves every variant. The embedded tiny GaRA-SAM by default.
"""

from __future__ import annotations

import argparse
import time
import numpy as np
import torch

from bench.common import machine_info
from gara_model.data.prompts import interior_points, mask_boxes
from gara_model.data.sequences import moving_sequence
from gara_model.predictor import GaraPredictor
from gara_model.prompts import ObjectPrompt
from gara_ros.tracking import FollowConfig, Status, Tracker

CONDITIONS = ("clear", "snow")
SCENES = {"1 object": (1, 1), "2-3 objects": (2, 3)}  # name -> objects per sequence (inclusive range)
TRACK_VARIANTS = {  # name -> FollowConfig; the first is the node's default
    "track": FollowConfig(),
    "mask box": FollowConfig(size_smoothing=1.0),
    "raw mask box": FollowConfig(clean=False, size_smoothing=1.0),
    "+ mask input": FollowConfig(mask_input=True),
    "margin 0.2": FollowConfig(box_margin=0.2),
    "size smoothing 0.3": FollowConfig(size_smoothing=0.3),
    "no lost checks": FollowConfig(min_score=0.0, max_area_change=1e9),
}
GOAL = 0.9  # track mode's share of the oracle's IoU at moderate motion


def true_prompts(masks: np.ndarray) -> list[ObjectPrompt]:
    """Per visible true mask of (O,H,W): its box (the outer edges of its pixels, so that a one-pixel sliver still
    has a valid box) and most interior pixel; None for a hidden object."""
    prompts = []
    for index, mask in enumerate(masks):
        if not mask.any():
            prompts.append(None)
            continue
        box = mask_boxes(mask[None])[0] + np.array([0, 0, 1, 1], np.float32)
        prompts.append(ObjectPrompt(str(index), points=interior_points(mask[None]), labels=np.ones(1, np.int64),
                                    box=box))
    return prompts


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


def run_sequence(predictor: GaraPredictor, seed: int, speed: float, frames: int,
                 num_objects: tuple[int, int]) -> dict[str, list[float]]:
    """Per variant: the IoU of every visible object in every frame; lost shares under "<variant> lost"."""
    sequence = moving_sequence(seed, frames=frames, speed=speed, num_objects=num_objects, conditions=CONDITIONS)
    ious: dict[str, list[float]] = {name: [] for name in ("oracle", "persist", *TRACK_VARIANTS)}
    lost: dict[str, list[float]] = {name: [] for name in TRACK_VARIANTS}
    trackers = {name: Tracker(config, max_objects=16) for name, config in TRACK_VARIANTS.items()}
    first = None
    for frame in sequence:
        predictor.set_image(frame.image)
        oracle = true_prompts(frame.masks)
        if first is None:
            first = oracle
            for tracker in trackers.values():
                tracker.prompt([p for p in first if p is not None])
        visible = [i for i, p in enumerate(oracle) if p is not None]
        # one decoder call: oracle and persist prompts for the visible objects, then every tracker's planned ones
        prompts = [oracle[i] for i in visible] + [first[i] for i in visible if first[i] is not None]
        persisted = [i for i in visible if first[i] is not None]
        plans = {name: tracker.plan(frame.image.shape[:2]) for name, tracker in trackers.items()}
        for plan in plans.values():
            prompts += [entry.prompt for entry in plan if entry.prompt is not None]
        prediction = predictor.predict(prompts)
        masks, scores = prediction.masks[:, 0], prediction.iou_scores[:, 0]
        logits = prediction.low_res_logits[:, 0]
        for k, i in enumerate(visible):
            ious["oracle"].append(iou(masks[k], frame.masks[i]))
        offset = len(visible)
        by_object = {i: iou(masks[offset + k], frame.masks[i]) for k, i in enumerate(persisted)}
        ious["persist"] += [by_object.get(i, 0.0) for i in visible]
        offset += len(persisted)
        for name, plan in plans.items():
            segmented = [entry for entry in plan if entry.prompt is not None]
            rows = slice(offset, offset + len(segmented))
            offset += len(segmented)
            statuses = trackers[name].update(segmented, masks[rows], scores[rows], logits[rows])
            results = {int(entry.object_id): (status, masks[rows][k])
                       for k, (entry, status) in enumerate(zip(segmented, statuses, strict=True))}
            for i in visible:
                status, mask = results.get(i, (Status.LOST, None))
                ious[name].append(0.0 if status == Status.LOST else iou(mask, frame.masks[i]))
                lost[name].append(float(status == Status.LOST))
    return {**ious, **{f"{name} lost": shares for name, shares in lost.items()}}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--speeds", default="1,2,4,8,16", help="pixels per frame, comma-separated")
    parser.add_argument("--sequences", type=int, default=10, help="sequences (seeds 0..N-1) per speed")
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the machine may be shared)")
    parser.add_argument("--checkpoint", default=None, help="SAM checkpoint (default: the embedded tiny GaRA-SAM)")
    parser.add_argument("--adapter", default=None, help="GaRA adapter file")
    parser.add_argument("--sam-variant", default="vit_b")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    predictor = GaraPredictor.from_files(sam_variant=args.sam_variant, checkpoint=args.checkpoint,
                                         adapter=args.adapter, device=args.device)
    print(machine_info(predictor.device))
    print(f"model: {predictor.model_name}; {args.sequences} sequences x {args.frames} frames per speed, "
          f"conditions {' then '.join(CONDITIONS)}")
    names = ["oracle", "persist", *TRACK_VARIANTS]
    for scene, num_objects in SCENES.items():
        print(f"\n{scene}, mean IoU\n")
        print("| speed (px/frame) | " + " | ".join(names) + " | track / oracle | track: frames lost |")
        print("|---:|" + "---:|" * (len(names) + 2))
        for speed in (float(s) for s in args.speeds.split(",")):
            start = time.perf_counter()
            totals: dict[str, list[float]] = {}
            for seed in range(args.sequences):
                for name, values in run_sequence(predictor, seed, speed, args.frames, num_objects).items():
                    totals.setdefault(name, []).extend(values)
            mean = {name: float(np.mean(values)) for name, values in totals.items()}
            share = mean["track"] / mean["oracle"]
            print(f"| {speed:g} | " + " | ".join(f"{mean[name]:.3f}" for name in names)
                  + f" | {share:.0%}{'' if share >= GOAL else ' (below goal)'} | {mean['track lost']:.1%} |"
                  + f" <!-- {len(totals['oracle'])} object-frames, {time.perf_counter() - start:.0f} s -->",
                  flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
