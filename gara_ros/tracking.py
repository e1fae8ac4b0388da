"""Objects followed across frames (track mode): each new frame prompts an object from its own previous mask. No rclpy.

The method, chosen by measuring it (bench/tracking.py; numbers in docs/ros.md, "Track mode"): the previous mask's
largest connected part, with small holes closed, gives the next prompt: a box of the object's size (smoothed over
frames by `size_smoothing`) around that part's box centre, grown by `box_margin` of its size per side (at least
`min_margin` pixels), and the part's most interior pixel as a foreground point. SAM's mask input from the previous
low-resolution logits (`mask_input`) is an option; it lowered the embedded tiny model's IoU.

An object is lost when its mask is empty, its predicted IoU falls below `min_score`, or its area changes by more
than `max_area_change` times from one frame to the next. A lost object gets no mask and is not prompted again until
a new prompt for its id brings it back.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from enum import IntEnum

import cv2
import numpy as np

from gara_model.data.prompts import interior_points
from gara_model.prompts import ObjectPrompt


class Status(IntEnum):
    """An object's state in a result; the values are ObjectResult.STATUS_*."""

    PROMPTED = 0  # segmented from a prompt it was given (every object outside track mode)
    TRACKED = 1  # segmented from its own previous mask
    LOST = 2  # no mask: its evidence collapsed; a new prompt for its id brings it back


@dataclass(frozen=True)
class FollowConfig:
    """How an object is prompted from its previous mask, and when it counts as lost."""

    box_margin: float = 0.1  # each side of the box moves out by this share of the box's size ...
    min_margin: float = 2.0  # ... and by at least this many pixels
    size_smoothing: float = 0.1  # the box's size follows the masks' box sizes by this share per frame (1: the last
    #                              mask's box); its centre is the last mask's box centre
    clean: bool = True  # seed from the mask's largest connected part with small holes closed (else the raw mask)
    mask_input: bool = False  # also give SAM the previous low-resolution logits
    min_score: float = 0.3  # lost below this predicted IoU
    max_area_change: float = 3.0  # lost when the area grows or shrinks by more than this factor in one frame

    def __post_init__(self):
        if self.box_margin < 0 or self.min_margin < 0:
            raise ValueError(f"box_margin={self.box_margin} and min_margin={self.min_margin} must be >= 0")
        if not 0 < self.size_smoothing <= 1:
            raise ValueError(f"size_smoothing={self.size_smoothing} must be in (0, 1]")
        if not 0 <= self.min_score <= 1:
            raise ValueError(f"min_score={self.min_score} must be in [0, 1]")
        if self.max_area_change <= 1:
            raise ValueError(f"max_area_change={self.max_area_change} must be > 1")


@dataclass(frozen=True)
class Seed:
    """What an object's next prompt is made from: its mask, cropped to the mask's box, in one image size."""

    box: tuple[int, int, int, int]  # XYXY, inclusive pixels of the image
    crop: np.ndarray  # (y2-y1+1, x2-x1+1) bool: the (cleaned) mask inside box
    area: int  # pixels of the mask as predicted, before cleaning
    size: tuple[float, float]  # (width, height) of the next prompt's box before margins (FollowConfig.size_smoothing)
    image_size: tuple[int, int]  # (H, W) of the frame it came from
    logits: np.ndarray | None  # (h, w) low-res logits of the prediction, kept only with FollowConfig.mask_input


def seed_from_mask(mask: np.ndarray, config: FollowConfig, size: tuple[float, float] | None = None,
                   logits: np.ndarray | None = None) -> Seed | None:
    """(H,W) bool mask -> its Seed (None for an empty mask), `size` being the box size (width, height) that the
    object had so far (None: the mask's own box; else smoothed towards it by config.size_smoothing).

    With config.clean, the seed is the mask's largest 8-connected part with holes smaller than a tenth of its box
    closed: SAM's stray specks (snowflakes, texture) would otherwise stretch the box, and holes would pull the
    interior point to an edge.
    """
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return None
    x1, y1, x2, y2 = int(cols[0]), int(rows[0]), int(cols[-1]), int(rows[-1])
    crop = mask[y1:y2 + 1, x1:x2 + 1].copy()  # not a view: the frame's masks are not kept alive
    area = int(np.count_nonzero(crop))
    if config.clean:
        _, parts, stats, _ = cv2.connectedComponentsWithStats(crop.view(np.uint8), connectivity=8)
        largest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
        x, y, width, height = (int(v) for v in stats[largest, :4])
        part = (parts[y:y + height, x:x + width] == largest).view(np.uint8)
        kernel_size = max(3, round(0.1 * min(width, height))) | 1  # odd
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (kernel_size, kernel_size))
        padded = np.pad(part, kernel_size)  # closing near the crop's edges sees background beyond them
        crop = cv2.morphologyEx(padded, cv2.MORPH_CLOSE, kernel)[kernel_size:-kernel_size,
                                                                  kernel_size:-kernel_size].view(bool)
        x1, y1, x2, y2 = x1 + x, y1 + y, x1 + x + width - 1, y1 + y + height - 1
    own = np.array([x2 - x1 + 1, y2 - y1 + 1], float)
    smoothed = own if size is None else (1 - config.size_smoothing) * np.asarray(size) + config.size_smoothing * own
    return Seed((x1, y1, x2, y2), crop, area, (float(smoothed[0]), float(smoothed[1])), mask.shape, logits)


def follow_prompt(object_id: str, seed: Seed, config: FollowConfig) -> ObjectPrompt:
    """The prompt for an object's next frame from its Seed: a box of the seed's size around its box's centre, grown
    by the margins and clipped to the image; the seed's most interior pixel as a foreground point; the seed's logits
    as mask input (if kept)."""
    x1, y1, x2, y2 = seed.box
    height, width = seed.image_size
    size = np.array(seed.size)
    half = size / 2 + np.maximum(config.box_margin * size, config.min_margin)
    centre = np.array([x1 + x2, y1 + y2]) / 2
    box = np.clip(np.concatenate([centre - half, centre + half]), 0, [width, height, width, height])
    point = interior_points(seed.crop[None])[0] + np.array([x1, y1], np.float32)
    return ObjectPrompt(object_id, points=point[None], labels=np.ones(1, np.int64), box=box.astype(np.float32),
                        mask_input=seed.logits if config.mask_input else None)


@dataclass(frozen=True)
class Planned:
    """One followed object's part in a frame: its prompt (None when lost), the status it gets if its mask holds up,
    and the object's generation (a newer prompt or a removal during the frame makes the frame's result stale)."""

    object_id: str
    prompt: ObjectPrompt | None
    status: Status
    generation: int


@dataclass
class _Followed:
    pending: ObjectPrompt | None  # a prompt it was given, not yet applied to a frame
    seed: Seed | None
    generation: int


class Tracker:
    """The followed objects by id, in the order they were first prompted; thread-safe (callbacks add and remove,
    the worker plans and updates).

    A frame: `plan` gives every object's prompt, the caller segments those with a prompt (dropping with `reject`
    any whose prompt is invalid for the frame), and `update` checks the masks and keeps them as the next seeds.
    """

    def __init__(self, config: FollowConfig, max_objects: int):
        self.config, self.max_objects = config, max_objects
        self._objects: dict[str, _Followed] = {}
        self._generation = 0
        self._lock = threading.Lock()

    def prompt(self, prompts: list[ObjectPrompt]) -> list[str]:
        """New ids join the followed objects; a known id is re-prompted (a lost one comes back). The prompts apply
        to the next frame planned. Returns one error per object refused because max_objects are followed."""
        errors = []
        with self._lock:
            for prompt in prompts:
                known = self._objects.get(prompt.object_id)
                if known is None and len(self._objects) >= self.max_objects:
                    errors.append(f"object {prompt.object_id!r}: already following max_objects={self.max_objects}")
                    continue
                self._generation += 1
                self._objects[prompt.object_id] = _Followed(prompt, known.seed if known else None, self._generation)
        return errors

    def remove(self, object_ids: list[str]) -> list[str]:
        """Stops following these ids; returns those that were followed."""
        with self._lock:
            return [i for i in object_ids if self._objects.pop(i, None) is not None]

    def clear(self) -> None:
        with self._lock:
            self._objects.clear()

    def counts(self) -> tuple[int, int]:
        """(followed objects, of which lost)."""
        with self._lock:
            lost = sum(o.pending is None and o.seed is None for o in self._objects.values())
            return len(self._objects), lost

    def following(self) -> bool:
        """True when some object is not lost (a new frame has something to segment)."""
        followed, lost = self.counts()
        return followed > lost

    def plan(self, image_size: tuple[int, int]) -> list[Planned]:
        """Every followed object's prompt for a frame of `image_size` (H, W): its pending prompt (PROMPTED), else one
        from its seed (TRACKED), else None (LOST; also a seed from a frame of another size)."""
        with self._lock:
            planned = []
            for object_id, followed in self._objects.items():
                if followed.pending is not None:
                    planned.append(Planned(object_id, followed.pending, Status.PROMPTED, followed.generation))
                elif followed.seed is not None and followed.seed.image_size == tuple(image_size):
                    planned.append(Planned(object_id, follow_prompt(object_id, followed.seed, self.config),
                                           Status.TRACKED, followed.generation))
                else:
                    planned.append(Planned(object_id, None, Status.LOST, followed.generation))
            return planned

    def reject(self, planned: Planned) -> None:
        """A planned prompt turned out invalid for its frame: the object keeps following its seed if it has one,
        else it is dropped."""
        with self._lock:
            followed = self._objects.get(planned.object_id)
            if followed is None or followed.generation != planned.generation:
                return
            if followed.seed is None:
                del self._objects[planned.object_id]
            else:
                followed.pending = None

    def update(self, planned: list[Planned], masks: np.ndarray, scores: np.ndarray,
               logits: np.ndarray | None = None) -> list[Status]:
        """The frame's (O,H,W) bool masks and (O,) predicted IoU for the `planned` objects that had a prompt (in
        order), and their (O,h,w) low-res logits (needed with FollowConfig.mask_input) -> each object's status.

        A PROMPTED or TRACKED mask becomes the object's next seed, unless it is empty, or (TRACKED only) its score is
        below min_score or its area changed more than max_area_change times: then the object is LOST and its seed
        dropped. An object re-prompted or removed while the frame was processed keeps its newer state.
        """
        statuses = []
        with self._lock:
            for index, entry in enumerate(planned):
                if entry.prompt is None:
                    raise ValueError(f"object {entry.object_id!r} had no prompt in this frame; pass only those that "
                                     "had one")
                followed = self._objects.get(entry.object_id)
                previous = followed.seed if followed is not None else None
                seed = seed_from_mask(masks[index], self.config, self._size_before(entry, previous),
                                      logits[index] if self.config.mask_input and logits is not None else None)
                status = entry.status if seed is not None else Status.LOST
                if status == Status.TRACKED and (scores[index] < self.config.min_score or previous is None
                                                 or not self._area_holds(previous.area, seed.area)):
                    status = Status.LOST
                statuses.append(status)
                if followed is not None and followed.generation == entry.generation:
                    followed.pending = None
                    followed.seed = seed if status != Status.LOST else None
        return statuses

    @staticmethod
    def _size_before(entry: Planned, previous: Seed | None) -> tuple[float, float] | None:
        """The box size an object had before this frame: a prompt's box, else the previous seed's size (None for a
        prompt without a box: the mask's own box starts it)."""
        if entry.status == Status.PROMPTED:
            box = entry.prompt.box
            return None if box is None else (float(box[2] - box[0] + 1), float(box[3] - box[1] + 1))
        return previous.size if previous is not None else None

    def _area_holds(self, before: int, after: int) -> bool:
        return before <= after * self.config.max_area_change and after <= before * self.config.max_area_change
