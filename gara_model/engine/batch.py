"""Training items: an image resized for the encoder, its target masks and sampled prompts, on SAM's frame."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch
from segment_anything.utils.transforms import ResizeLongestSide
from torch.utils.data import Dataset, Sampler

from gara_model.data.corrupted import CorruptionMix
from gara_model.data.prompts import training_prompts


@dataclass
class TrainItem:
    """One image for training, in the resized frame (longest side = S, the encoder's input size).

    image: 3 x h x w float (0..255, not yet normalised or padded; Sam.preprocess does both),
    masks: N x S x S float {0, 1}, resized and zero-padded like the image,
    points: N x K x 2 (X, Y) and labels N x K, or None; boxes: N x 4 XYXY, or None.
    """

    image: torch.Tensor
    masks: torch.Tensor
    points: torch.Tensor | None
    labels: torch.Tensor | None
    boxes: torch.Tensor | None
    meta: dict


class TrainItems(Dataset):
    """Wraps an instance dataset; item (index, draw) samples objects and prompts with rng [seed, index, draw] and,
    with `corruptions`, the image's corruption for this draw with rng [seed, index, draw, 1]."""

    def __init__(self, dataset: Dataset, image_size: int, max_objects: int, prompt_mode: str, points_per_object: int,
                 box_jitter: float, seed: int, corruptions: CorruptionMix | None = None) -> None:
        self.dataset, self.image_size, self.max_objects = dataset, image_size, max_objects
        self.prompt_mode, self.points_per_object, self.box_jitter, self.seed = prompt_mode, points_per_object, box_jitter, seed
        self.corruptions = corruptions
        self.transform = ResizeLongestSide(image_size)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int]) -> TrainItem:
        index, draw = key
        sample = self.dataset[index]
        if self.corruptions is not None:
            sample = self.corruptions.apply(sample, np.random.default_rng([self.seed, index, draw, 1]))
        rng = np.random.default_rng([self.seed, index, draw])
        masks = sample.masks
        if len(masks) > self.max_objects:
            masks = masks[np.sort(rng.choice(len(masks), self.max_objects, replace=False))]
        prompts = training_prompts(masks, rng, mode=self.prompt_mode, k=self.points_per_object, box_jitter=self.box_jitter)
        size = sample.image.shape[:2]
        resized = self.transform.apply_image(sample.image)
        h, w = resized.shape[:2]
        targets = np.zeros((len(masks), self.image_size, self.image_size), np.float32)
        for i, mask in enumerate(masks):
            targets[i, :h, :w] = cv2.resize(mask.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST)
        as_tensor = lambda a: None if a is None else torch.as_tensor(a)  # noqa: E731
        return TrainItem(
            image=torch.as_tensor(resized).permute(2, 0, 1).float(),
            masks=torch.as_tensor(targets),
            points=as_tensor(None if prompts.points is None else self.transform.apply_coords(prompts.points, size)),
            labels=as_tensor(prompts.labels),
            boxes=as_tensor(None if prompts.boxes is None else self.transform.apply_boxes(prompts.boxes, size)),
            meta=sample.meta,
        )


class StepBatchSampler(Sampler):
    """Batches by step number: step s of every run with the same seed sees the same images, so a resumed
    run continues exactly where the first one stopped. Each of `world_size` ranks takes its own slice."""

    def __init__(self, dataset_size: int, batch_size: int, start_step: int, steps: int, seed: int,
                 rank: int = 0, world_size: int = 1) -> None:
        self.per_epoch = dataset_size // (batch_size * world_size)
        if self.per_epoch == 0:
            raise ValueError(f"the dataset has {dataset_size} items, fewer than one global batch ({batch_size} x {world_size})")
        self.dataset_size, self.batch_size, self.start_step, self.steps = dataset_size, batch_size, start_step, steps
        self.seed, self.rank, self.world_size = seed, rank, world_size

    def __len__(self) -> int:
        return max(self.steps - self.start_step, 0)

    def __iter__(self):
        for step in range(self.start_step, self.steps):
            epoch, k = divmod(step, self.per_epoch)
            order = np.random.default_rng([self.seed, epoch]).permutation(self.dataset_size)
            start = (k * self.world_size + self.rank) * self.batch_size
            yield [(int(i), step) for i in order[start : start + self.batch_size]]
