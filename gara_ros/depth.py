"""3D from an aligned depth image: each object's mask pixels back-projected into the camera's optical frame. No rclpy.

Pinhole model of sensor_msgs/CameraInfo's K (no distortion: an aligned depth image of a ROS camera driver is
rectified or close to it): a pixel (u, v) with depth z in metres is the point
x = (u - cx) * z / fx, y = (v - cy) * z / fy, z (optical frame: x right, y down, z forward).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Intrinsics:
    """Pinhole intrinsics in pixels, of an image of `width` x `height` pixels."""

    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int


@dataclass
class ObjectPoints:
    """The valid depth points of O objects, in the optical frame `frame_id`, metres.

    points: N x 3 float32 (x, y, z), object after object; labels: N uint32, the object's label (1..O) per point;
    centroids: O x 3 (mean of each object's points), extents: O x 3 (max - min along x, y, z), counts: O
    (points per object; 0: no valid depth under its mask, and its centroid and extent are zero).
    """

    frame_id: str
    points: np.ndarray
    labels: np.ndarray
    centroids: np.ndarray
    extents: np.ndarray
    counts: np.ndarray


def object_points(depth: np.ndarray, masks: np.ndarray, boxes: list[tuple[float, float, float, float]],
                  intrinsics: Intrinsics, max_depth: float, depth_band: float, frame_id: str,
                  num_objects: int | None = None) -> ObjectPoints:
    """Back-projects each mask's pixels of valid depth.

    depth: H x W float32 metres (0, NaN, infinite or beyond `max_depth` = invalid); masks: P x H x W bool with
    their XYXY inclusive pixel `boxes` (conversions.mask_box_area; a mask is read only inside its box); objects
    P..num_objects-1 (lost ones) have no mask and no points. depth_band > 0: an object keeps only the points within
    this many metres in z of its points' median depth, so that mask edges spilling onto the background (or onto
    something in front) do not stretch its extent; 0 keeps all.
    """
    if depth.shape != masks.shape[1:]:
        raise ValueError(f"depth image {depth.shape[1]} x {depth.shape[0]} does not match the masks' "
                         f"{masks.shape[2]} x {masks.shape[1]}")
    num_objects = len(masks) if num_objects is None else num_objects
    centroids, extents = np.zeros((num_objects, 3)), np.zeros((num_objects, 3))
    counts = np.zeros(num_objects, np.int64)
    clouds = []
    for index, (mask, (x1, y1, x2, y2)) in enumerate(zip(masks, boxes, strict=True)):
        rows, cols = slice(int(y1), int(y2) + 1), slice(int(x1), int(x2) + 1)
        z = depth[rows, cols]
        with np.errstate(invalid="ignore"):  # NaN compares False: invalid
            valid = mask[rows, cols] & (z > 0) & (z <= max_depth)
        v, u = np.nonzero(valid)
        z = z[v, u].astype(np.float32)
        if depth_band > 0 and z.size:
            near = np.abs(z - np.median(z)) <= depth_band
            v, u, z = v[near], u[near], z[near]
        if z.size == 0:
            continue
        u = u.astype(np.float32) + np.float32(cols.start)
        v = v.astype(np.float32) + np.float32(rows.start)
        points = np.stack([(u - intrinsics.cx) * z / intrinsics.fx, (v - intrinsics.cy) * z / intrinsics.fy, z],
                          axis=1).astype(np.float32)
        centroids[index] = points.mean(axis=0, dtype=np.float64)
        extents[index] = points.max(axis=0) - points.min(axis=0)
        counts[index] = len(points)
        clouds.append((points, np.full(len(points), index + 1, np.uint32)))
    points = np.concatenate([c[0] for c in clouds]) if clouds else np.zeros((0, 3), np.float32)
    labels = np.concatenate([c[1] for c in clouds]) if clouds else np.zeros(0, np.uint32)
    return ObjectPoints(frame_id, points, labels, centroids, extents, counts)
