"""evaluate(): IoU and Dice per mask for several models side by side, per dataset x condition x prompt type, and the
gate decisions of every image for the models that have gates.

Shared by `python -m gara_model.evaluate` and the end of training. Every image is degraded once per corruption and
shown to every model, so the models see exactly the same pixels and prompts.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Iterator, Mapping, Sequence

import numpy as np
from torch.utils.data import Dataset
from tqdm import tqdm

from gara_model.data.corruptions import corrupt, corruption_severity
from gara_model.data.prompts import EVAL_PROTOCOL, eval_prompts
from gara_model.engine.gate_adaptivity import GateAdaptivity, gate_adaptivity
from gara_model.engine.metrics import iou_and_dice
from gara_model.predictor import GaraPredictor
from gara_model.prompts import ObjectPrompt

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


@dataclass
class GateRecords:
    """The gate decisions of one model: one row per image shown, with its dataset, scene (the sample's image_id: the
    same for every view of one scene) and condition."""

    layout: tuple[tuple[str, int, int], ...] = ()  # GateSummary.layout: how a decision row splits into adapters
    decisions: list[np.ndarray] = field(default_factory=list)  # each D bool
    datasets: list[str] = field(default_factory=list)
    scenes: list = field(default_factory=list)
    conditions: list[str] = field(default_factory=list)

    def adaptivity(self, dataset: str | None = None) -> GateAdaptivity:
        """`gate_adaptivity` over the images of `dataset` (None: all)."""
        rows = [i for i, d in enumerate(self.datasets) if dataset is None or d == dataset]
        return gate_adaptivity(np.stack([self.decisions[i] for i in rows]), [self.conditions[i] for i in rows],
                               [f"{self.datasets[i]}/{self.scenes[i]}" for i in rows])


@dataclass
class Evaluation:
    rows: list[EvalRow]
    gates: dict[str, GateRecords]  # model -> its gate decisions; only models with gates


@dataclass
class _Totals:
    """Running sums of one model x dataset x condition x prompt type."""

    iou: list[float] = field(default_factory=list)  # per mask
    dice: list[float] = field(default_factory=list)
    images: int = 0
    encoder_seconds: float = 0.0
    high_rank_shares: list[float] = field(default_factory=list)  # per image, models with gates only
    active_components: list[float] = field(default_factory=list)


def degraded_views(dataset: Dataset, corruptions: Sequence[str], severity: int, seed: int) -> Iterator[tuple[object, str, np.ndarray, np.ndarray]]:
    """(scene, condition, image, masks): each image as it is (its own condition), and each clear image once per
    corruption; scene is the sample's image_id."""
    for index in range(len(dataset)):
        sample = dataset[index]
        scene = sample.meta["image_id"]
        yield scene, sample.meta["condition"], sample.image, sample.masks
        if sample.meta["condition"] != "clear":
            continue
        for name in corruptions:
            level = corruption_severity(name, severity)
            yield scene, name, corrupt(sample.image, name, level, seed=seed * 1_000_003 + index), sample.masks


def check_no_mixed_conditions(name: str, dataset: Dataset, corruptions: Sequence[str]) -> None:
    """ValueError when a dataset already holds degraded images under some of `corruptions` (Robust-Seg): corrupting its
    clear images as well would file two kinds of image under one condition name."""
    overlap = sorted(set(getattr(dataset, "conditions", ())) & set(corruptions))
    if overlap:
        raise ValueError(f"dataset {name!r} already holds images under {overlap}; applying those corruptions to its clear "
                         "images too would mix them in one row: evaluate it with no corruptions (--corruptions '', "
                         "data.eval_corruptions: [])")


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
) -> Evaluation:
    """One EvalRow per model x dataset x condition x prompt type, in that nesting order, and the gate records."""
    unknown = set(prompt_types) - set(PROMPT_TYPES)
    if unknown:
        raise ValueError(f"prompt_types must be from {PROMPT_TYPES}, got {sorted(unknown)}")
    totals: dict[tuple[str, str, str, str], _Totals] = {}
    gates: dict[str, GateRecords] = {}
    for dataset_name, dataset in datasets.items():
        check_no_mixed_conditions(dataset_name, dataset, corruptions)
    for dataset_name, dataset in datasets.items():
        views = degraded_views(dataset, corruptions, severity, seed)
        total = len(dataset) * (1 + len(corruptions))
        for scene, condition, image, masks in tqdm(views, total=total, desc=f"evaluate {dataset_name}", disable=not progress):
            prompts = {prompt: object_prompts(masks, prompt, num_random_points, seed) for prompt in prompt_types}
            for model_name, predictor in predictors.items():
                started = time.perf_counter()
                predictor.set_image(image)
                encoder_seconds = time.perf_counter() - started
                if predictor.gates is not None:
                    records = gates.setdefault(model_name, GateRecords(layout=predictor.gates.layout))
                    records.decisions.append(predictor.gates.decisions)
                    records.datasets.append(dataset_name)
                    records.scenes.append(scene)
                    records.conditions.append(condition)
                for prompt, objects in prompts.items():
                    iou, dice = iou_and_dice(predictor.predict(objects).masks[:, 0], masks)
                    entry = totals.setdefault((model_name, dataset_name, condition, prompt), _Totals())
                    entry.iou.extend(iou)
                    entry.dice.extend(dice)
                    entry.images += 1
                    entry.encoder_seconds += encoder_seconds
                    if predictor.gates is not None:
                        entry.high_rank_shares.append(predictor.gates.high_rank_share)
                        entry.active_components.append(predictor.gates.mean_active_components)
    mean = lambda values: float(np.mean(values)) if values else None  # noqa: E731
    conditions = list(dict.fromkeys(key[2] for key in totals))
    order = lambda key: (list(predictors).index(key[0]), list(datasets).index(key[1]), conditions.index(key[2]), list(prompt_types).index(key[3]))  # noqa: E731
    rows = [
        EvalRow(*key, float(np.mean(t.iou)), float(np.mean(t.dice)), len(t.iou), t.images, mean(t.high_rank_shares),
                mean(t.active_components), 1000 * t.encoder_seconds / t.images)
        for key, t in sorted(totals.items(), key=lambda item: order(item[0]))
    ]
    return Evaluation(rows, gates)


def rows_as_dicts(rows: Sequence[EvalRow]) -> list[dict]:
    return [asdict(row) for row in rows]
