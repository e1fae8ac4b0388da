"""evaluate(): IoU and Dice per mask for several models side by side, per dataset x condition x prompt type.

Shared by `python -m gara_model.evaluate` and the end of training. Every image is degraded once per
corruption and shown to every model, so the models see exactly the same pixels and prompts.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Iterator, Mapping, Sequence

import numpy as np
from torch.utils.data import Dataset
from tqdm import tqdm

from gara_model.data.corruptions import ROBUST_SEG, corrupt
from gara_model.data.prompts import EVAL_PROTOCOL, eval_prompts
from gara_model.engine.metrics import iou_and_dice
from gara_model.predictor import GaraPredictor, ObjectPrompt

PROMPT_TYPES = ("point", "box")


@dataclass
class EvalRow:
    """Mean over masks of one model on one dataset x condition x prompt type."""

    model: str
    dataset: str
    condition: str
    prompt: str
    iou: float
    dice: float
    masks: int
    images: int
    high_rank_share: float | None  # mean over images; None for a model without adapters (plain SAM)
    mean_active_components: float | None
    encoder_ms: float  # mean time of set_image (the image encoder) per image
    protocol: str = EVAL_PROTOCOL


def degraded_views(dataset: Dataset, corruptions: Sequence[str], severity: int, seed: int) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
    """(condition, image, masks): each image as it is (its own condition), and each clear image once per corruption."""
    for index in range(len(dataset)):
        sample = dataset[index]
        yield sample.meta["condition"], sample.image, sample.masks
        if sample.meta["condition"] != "clear":
            continue
        for name in corruptions:
            level = None if name in ROBUST_SEG else severity
            yield name, corrupt(sample.image, name, level, seed=seed * 1_000_003 + index), sample.masks


def object_prompts(masks: np.ndarray, prompt: str, num_random_points: int, seed: int) -> list[ObjectPrompt]:
    """The evaluation protocol's prompts for N x H x W masks: interior point (+ random points) or tight box."""
    prompts = eval_prompts(masks, num_random_points=num_random_points, seed=seed)
    if prompt == "point":
        return [ObjectPrompt(str(i), points=p, labels=l) for i, (p, l) in enumerate(zip(prompts.points, prompts.labels))]
    return [ObjectPrompt(str(i), box=b) for i, b in enumerate(prompts.boxes)]


def evaluate(
    predictors: Mapping[str, GaraPredictor],
    datasets: Mapping[str, Dataset],
    corruptions: Sequence[str] = (),
    severity: int = 3,
    prompt_types: Sequence[str] = PROMPT_TYPES,
    num_random_points: int = 0,
    seed: int = 0,
    progress: bool = True,
) -> list[EvalRow]:
    """One EvalRow per model x dataset x condition x prompt type, in that nesting order."""
    unknown = set(prompt_types) - set(PROMPT_TYPES)
    if unknown:
        raise ValueError(f"prompt_types must be from {PROMPT_TYPES}, got {sorted(unknown)}")
    scores: dict[tuple, list] = {}  # key -> [iou list, dice list, images, high shares, active means, encoder s]
    for dataset_name, dataset in datasets.items():
        views = degraded_views(dataset, corruptions, severity, seed)
        total = len(dataset) * (1 + len(corruptions))
        for condition, image, masks in tqdm(views, total=total, desc=f"evaluate {dataset_name}", disable=not progress):
            for model_name, predictor in predictors.items():
                started = time.perf_counter()
                predictor.set_image(image)
                encoder_seconds = time.perf_counter() - started
                for prompt in prompt_types:
                    objects = object_prompts(masks, prompt, num_random_points, seed)
                    predicted = predictor.predict(objects).masks[:, 0]
                    iou, dice = iou_and_dice(predicted, masks)
                    entry = scores.setdefault((model_name, dataset_name, condition, prompt), [[], [], 0, [], [], 0.0])
                    entry[0].extend(iou)
                    entry[1].extend(dice)
                    entry[2] += 1
                    entry[5] += encoder_seconds
                    if predictor.gates is not None:
                        entry[3].append(predictor.gates.high_rank_share)
                        entry[4].append(predictor.gates.mean_active_components)
    mean = lambda values: float(np.mean(values)) if values else None  # noqa: E731
    conditions = list(dict.fromkeys(key[2] for key in scores))
    order = lambda key: (list(predictors).index(key[0]), list(datasets).index(key[1]), conditions.index(key[2]), list(prompt_types).index(key[3]))  # noqa: E731
    return [
        EvalRow(*key, float(np.mean(ious)), float(np.mean(dices)), len(ious), images, mean(high), mean(active), 1000 * seconds / images)
        for key, (ious, dices, images, high, active, seconds) in sorted(scores.items(), key=lambda item: order(item[0]))
    ]


def rows_as_dicts(rows: Sequence[EvalRow]) -> list[dict]:
    return [asdict(row) for row in rows]
