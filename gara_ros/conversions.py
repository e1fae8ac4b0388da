"""ROS messages <-> numpy, without cv_bridge and without rclpy.

Images are (H,W,3) uint8 RGB on the model side; masks are (O,H,W) bool; points
and boxes are (X,Y) pixels, boxes XYXY; depth is (H,W) float32 metres; 3D points are
metres in the camera's optical frame.

Messages are read field by field, so ROS 2's generated messages and those of a rosbags type store both work.
Outputs are built from a `MessageTypes`: ROS 2's classes by default (`ros_message_types`, the node; imported
only then), or a rosbags type store's (gara_ros.bag, the replay), so this module loads without ROS.
"""

from __future__ import annotations

import functools
import importlib
import io
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np
from PIL import Image as PILImage

from gara_model.prompts import ObjectPrompt
from gara_ros.depth import Intrinsics, ObjectPoints
from gara_ros.overlay import label_colour

if TYPE_CHECKING:
    from builtin_interfaces.msg import Time
    from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2
    from std_msgs.msg import Header
    from visualization_msgs.msg import MarkerArray

    from gara_ros.msg import SegmentPrompt, SegmentResult


class ConversionError(ValueError):
    """A message that cannot be turned into arrays: unusable pixels or an invalid stamp."""


@dataclass(frozen=True)
class MessageTypes:
    """The constructors output messages are built with, one per type of MESSAGE_TYPES.

    Each takes any of its message's fields as keywords (the others keep their defaults: zero, empty; a field whose
    .msg default is not zero, as Quaternion's w, is always given) and carries the type's constants as attributes
    (`marker.CUBE`). `image` and `point_cloud` take `data`, the bytes as a flat uint8 array.
    """

    header: Callable[..., Any]
    image: Callable[..., Any]
    segment_result: Callable[..., Any]
    object_result: Callable[..., Any]
    point: Callable[..., Any]
    vector3: Callable[..., Any]
    pose: Callable[..., Any]
    quaternion: Callable[..., Any]
    color: Callable[..., Any]
    point_field: Callable[..., Any]
    point_cloud: Callable[..., Any]
    marker: Callable[..., Any]
    marker_array: Callable[..., Any]


# MessageTypes field -> the message type it builds
MESSAGE_TYPES = {
    "header": "std_msgs/msg/Header", "image": "sensor_msgs/msg/Image",
    "segment_result": "gara_ros/msg/SegmentResult", "object_result": "gara_ros/msg/ObjectResult",
    "point": "geometry_msgs/msg/Point", "vector3": "geometry_msgs/msg/Vector3", "pose": "geometry_msgs/msg/Pose",
    "quaternion": "geometry_msgs/msg/Quaternion", "color": "std_msgs/msg/ColorRGBA",
    "point_field": "sensor_msgs/msg/PointField", "point_cloud": "sensor_msgs/msg/PointCloud2",
    "marker": "visualization_msgs/msg/Marker", "marker_array": "visualization_msgs/msg/MarkerArray",
}
BYTES_FIELDS = ("image", "point_cloud")  # the MessageTypes whose `data` (uint8[]) is given as a flat uint8 array


class _DataFromBytes:
    """A ROS 2 message class whose `data` is filled straight into the message's array.array, the one copy
    (Image(data=...) would copy twice); the class's constants stay readable."""

    def __init__(self, cls: type):
        self.cls = cls

    def __call__(self, data: np.ndarray, **fields):
        msg = self.cls(**fields)
        msg.data.frombytes(data)
        return msg

    def __getattr__(self, name: str):
        return getattr(self.cls, name)


def ros_message_class(msgtype: str) -> type:
    """ROS 2's generated class of a message type ("sensor_msgs/msg/Image"; needs the message's package, and for
    gara_ros's own messages the built gara_ros.msg)."""
    package, _, name = msgtype.split("/")
    return getattr(importlib.import_module(f"{package}.msg"), name)


@functools.cache
def ros_message_types() -> MessageTypes:
    """ROS 2's generated classes."""
    constructors = {name: ros_message_class(msgtype) for name, msgtype in MESSAGE_TYPES.items()}
    return MessageTypes(**{name: _DataFromBytes(cls) if name in BYTES_FIELDS else cls
                           for name, cls in constructors.items()})


# A compressed image may declare any size in its few header bytes: a 631-byte jpeg claiming 30000 x 30000 pixels
# made OpenCV allocate 6.4 GB. Larger declared sizes are refused before decoding (8192 x 8192 = 67 MP).
MAX_COMPRESSED_PIXELS = 8192 * 8192


# encoding -> (dtype, channels, OpenCV code from this layout to RGB; None = already RGB)
ENCODINGS = {
    "rgb8": (np.uint8, 3, None),
    "bgr8": (np.uint8, 3, cv2.COLOR_BGR2RGB),
    "rgba8": (np.uint8, 4, cv2.COLOR_RGBA2RGB),
    "bgra8": (np.uint8, 4, cv2.COLOR_BGRA2RGB),
    "mono8": (np.uint8, 1, cv2.COLOR_GRAY2RGB),
    "mono16": (np.uint16, 1, cv2.COLOR_GRAY2RGB),
    "16UC1": (np.uint16, 1, cv2.COLOR_GRAY2RGB),
}
# depth encoding -> (dtype, channels, metres per unit): REP 118
DEPTH_ENCODINGS = {"16UC1": (np.uint16, 1, 0.001), "32FC1": (np.float32, 1, 1.0)}


def image_to_array(msg: Image, encodings: dict = ENCODINGS) -> np.ndarray:
    """The pixels of `msg` as an (H,W,C) array of the encoding's dtype, native byte order; `encodings` (ENCODINGS
    or DEPTH_ENCODINGS) says which encodings are accepted and their (dtype, channels, ...).

    Honours `step` (row padding) and `is_bigendian`; copies only for a foreign byte order or odd multi-byte steps.
    """
    if msg.encoding not in encodings:
        raise ConversionError(f"unsupported encoding {msg.encoding!r} (supported: {', '.join(encodings)})")
    dtype, channels = encodings[msg.encoding][:2]
    dtype = np.dtype(dtype).newbyteorder(">" if msg.is_bigendian else "<")
    row_bytes = msg.width * channels * dtype.itemsize
    if msg.width == 0 or msg.height == 0:
        raise ConversionError(f"{msg.encoding} image is empty ({msg.width}x{msg.height})")
    if msg.step < row_bytes or len(msg.data) != msg.height * msg.step:
        raise ConversionError(
            f"{msg.encoding} image {msg.width}x{msg.height}: data has {len(msg.data)} bytes, "
            f"expected height*step = {msg.height}*{msg.step} with step >= {row_bytes}"
        )
    rows = np.frombuffer(msg.data, np.uint8).reshape(msg.height, msg.step)[:, :row_bytes]
    pixels = rows.view(dtype).reshape(msg.height, msg.width, channels)
    # OpenCV needs rows aligned to the pixel size: copy odd-step 16-bit images.
    return pixels.astype(pixels.dtype.newbyteorder("="), copy=bool(msg.step % dtype.itemsize))


def depth_to_metres(msg: Image) -> np.ndarray:
    """An aligned depth image, 16UC1 (millimetres) or 32FC1 (metres) -> (H,W) float32 metres; invalid pixels stay
    0 or NaN."""
    pixels = image_to_array(msg, DEPTH_ENCODINGS)[..., 0]
    scale = DEPTH_ENCODINGS[msg.encoding][2]
    return pixels * np.float32(scale) if scale != 1 else pixels.astype(np.float32, copy=False)


def intrinsics_from_camera_info(msg: CameraInfo) -> Intrinsics:
    """fx, fy, cx, cy from K (row-major 3 x 3) of a sensor_msgs/CameraInfo, and its image size."""
    fx, cx, fy, cy = (float(msg.k[i]) for i in (0, 2, 4, 5))
    if not (np.isfinite([fx, fy, cx, cy]).all() and fx > 0 and fy > 0):
        raise ConversionError(f"camera info has K with fx={fx}, fy={fy}, cx={cx}, cy={cy}: needs finite values and "
                              "positive focal lengths (an uncalibrated camera?)")
    return Intrinsics(fx, fy, cx, cy, int(msg.width), int(msg.height))


def image_to_rgb(msg: Image) -> np.ndarray:
    """sensor_msgs/Image -> (H,W,3) uint8 RGB; 16-bit images are min-max stretched to 0..255."""
    pixels = image_to_array(msg)
    code = ENCODINGS[msg.encoding][2]
    if pixels.dtype == np.uint16:
        pixels = cv2.normalize(pixels[..., 0], None, 0, 255, cv2.NORM_MINMAX, dtype=cv2.CV_8U)
    if code is None:
        return np.ascontiguousarray(pixels)
    return cv2.cvtColor(pixels, code)


def compressed_to_rgb(msg: CompressedImage) -> np.ndarray:
    """sensor_msgs/CompressedImage (jpeg or png) -> (H,W,3) uint8 RGB.

    The declared size is read from the header first (Pillow reads only the header) and must not exceed
    MAX_COMPRESSED_PIXELS; the pixels are then decoded once, by OpenCV.
    """
    what = f"compressed image (format {msg.format!r}, {len(msg.data)} bytes)"
    data = np.frombuffer(msg.data, np.uint8)
    if data.size == 0:
        raise ConversionError(f"{what} has no data")
    try:
        with PILImage.open(io.BytesIO(data)) as header:
            width, height = header.size
    except (OSError, PILImage.DecompressionBombError) as error:  # not an image Pillow knows, or absurdly large
        raise ConversionError(f"cannot decode {what}: {error}") from None
    if width * height > MAX_COMPRESSED_PIXELS:
        raise ConversionError(f"{what} declares {width} x {height} pixels, more than {MAX_COMPRESSED_PIXELS}")
    try:
        bgr = cv2.imdecode(data, cv2.IMREAD_COLOR)
    except cv2.error as error:
        raise ConversionError(f"cannot decode {what}: {error.err}") from None
    if bgr is None:
        raise ConversionError(f"cannot decode {what}")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def stamp_to_ns(stamp: Time) -> int:
    """builtin_interfaces/Time -> integer nanoseconds; ConversionError for a negative time (which rclpy's
    Time.from_msg raises ValueError for)."""
    if stamp.sec < 0:
        raise ConversionError(f"stamp {stamp.sec} s + {stamp.nanosec} ns is negative")
    return stamp.sec * 1_000_000_000 + stamp.nanosec


def array_to_image(pixels: np.ndarray, encoding: str, header: Header | None = None,
                   types: MessageTypes | None = None) -> Image:
    """(H,W) or (H,W,C) array already in `encoding`'s layout -> sensor_msgs/Image (no padding) of `types`
    (default ROS 2's)."""
    if encoding not in ENCODINGS:
        raise ConversionError(f"unsupported encoding {encoding!r} (supported: {', '.join(ENCODINGS)})")
    dtype, channels, _ = ENCODINGS[encoding]
    if pixels.dtype != dtype or pixels.ndim not in (2, 3) or (pixels.shape + (1,))[2] != channels:
        shape = "HxW" if channels == 1 else f"HxWx{channels}"
        raise ConversionError(f"{encoding} needs an {shape} {np.dtype(dtype)} array, got {pixels.shape} {pixels.dtype}")
    types = types or ros_message_types()
    height, width = pixels.shape[:2]
    return types.image(header=types.header() if header is None else header, height=height, width=width,
                       encoding=encoding, is_bigendian=int(not np.little_endian),
                       step=width * channels * pixels.itemsize,
                       data=np.ascontiguousarray(pixels).reshape(-1).view(np.uint8))


def prompts_from_msg(msg: SegmentPrompt) -> list[ObjectPrompt]:
    """The objects of `msg` as ObjectPrompts, unchecked: points (N,2) (X,Y) pixels, labels (N,), box XYXY or None.

    Checking them needs the image's size, so it happens where the image is decoded (gara_ros.core).
    """
    return [
        ObjectPrompt(
            object_id=obj.object_id,
            points=np.array([[p.x, p.y] for p in obj.points], dtype=float).reshape(-1, 2),
            labels=np.array(obj.labels, dtype=int),
            box=np.array(obj.box, dtype=float) if obj.has_box else None,
        )
        for obj in msg.objects
    ]


def best_masks(masks: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(O,C,H,W) masks and (O,C) scores -> the highest-scoring (O,H,W) masks and their (O,) scores.

    With one mask per object (C = 1) these are views, not copies.
    """
    if masks.shape[1] == 1:
        return masks[:, 0], scores[:, 0]
    best = scores.argmax(axis=1)
    rows = np.arange(len(best))
    return masks[rows, best], scores[rows, best]


def labels_from_masks(masks: np.ndarray, extents: list[tuple[tuple[float, float, float, float], int]]) -> np.ndarray:
    """(O,H,W) bool masks with their `mask_box_area` extents -> (H,W) uint16 instance ids 1..O (0 = background;
    later objects on top). Each mask is read only inside its box."""
    labels = np.zeros(masks.shape[1:], np.uint16)
    for label, mask, box in _boxed(masks, extents):
        np.copyto(labels[box], label, where=mask[box])
    return labels


def mask_box_area(mask: np.ndarray) -> tuple[tuple[float, float, float, float], int]:
    """Tight XYXY pixel box of an (H,W) bool mask and its area in pixels; zeros when empty.

    After one pass over the rows, only the band of rows the mask touches is read (np.nonzero took ~12 ms at 1080p).
    """
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return (0.0, 0.0, 0.0, 0.0), 0
    band = mask[rows[0]:rows[-1] + 1]
    cols = np.flatnonzero(band.any(axis=0))
    return (float(cols[0]), float(rows[0]), float(cols[-1]), float(rows[-1])), int(np.count_nonzero(band))


def mask_union(masks: np.ndarray, extents: list[tuple[tuple[float, float, float, float], int]]) -> np.ndarray:
    """(O,H,W) bool masks with their `mask_box_area` extents -> (H,W) uint8, 255 where any mask is set.

    Each mask is read only inside its box.
    """
    union = np.zeros(masks.shape[1:], np.uint8)
    for _, mask, box in _boxed(masks, extents):
        np.maximum(union[box], mask[box].view(np.uint8) * np.uint8(255), out=union[box])
    return union


def _boxed(masks: np.ndarray, extents: list[tuple[tuple[float, float, float, float], int]]):
    """(label 1..O, mask, its box as a (rows, cols) slice) for every non-empty mask."""
    for label, (mask, ((x1, y1, x2, y2), area)) in enumerate(zip(masks, extents, strict=True), start=1):
        if area:
            yield label, mask, np.s_[int(y1):int(y2) + 1, int(x1):int(x2) + 1]


def result_msg(header: Header, object_ids: list[str], extents: list[tuple[tuple[float, float, float, float], int]],
               scores: np.ndarray, high_rank_share: float, mean_active_components: float, latency_ms: float,
               statuses: list[int] | None = None, points: ObjectPoints | None = None,
               types: MessageTypes | None = None) -> SegmentResult:
    """SegmentResult (of `types`, default ROS 2's) for objects with their masks' `mask_box_area` extents, (O,)
    scores, ObjectResult.STATUS_* statuses (None: all prompted) and 3D statistics (None: no depth), and the image's
    gate summary; label i+1 is object i as in labels_from_masks."""
    types = types or ros_message_types()
    objects = []
    for index, (object_id, (box, area), score) in enumerate(zip(object_ids, extents, scores, strict=True)):
        status = int(statuses[index]) if statuses is not None else types.object_result.STATUS_PROMPTED
        with_3d = points is not None and points.counts[index]
        centroid, extent = (points.centroids[index], points.extents[index]) if with_3d else (np.zeros(3),) * 2
        objects.append(types.object_result(
            object_id=object_id, label=index + 1, status=status, iou_score=float(score),
            box=np.array(box, np.float32), area=area, centroid=types.point(**_xyz(centroid)),
            extent=types.vector3(**_xyz(extent)), depth_points=int(points.counts[index]) if with_3d else 0))
    return types.segment_result(header=header, latency_ms=float(latency_ms), high_rank_share=float(high_rank_share),
                                mean_active_components=float(mean_active_components), objects=objects)


def _xyz(values) -> dict[str, float]:
    """x, y, z keywords (geometry_msgs/Point, Vector3) from three numbers."""
    return dict(zip("xyz", map(float, values), strict=True))


# PointCloud2 layout of ~/points: x, y, z float32 and the object's label uint32, 16 bytes per point, no padding.
# name -> (PointField datatype constant, numpy type)
CLOUD_FIELDS = {"x": ("FLOAT32", np.float32), "y": ("FLOAT32", np.float32), "z": ("FLOAT32", np.float32),
                "label": ("UINT32", np.uint32)}


def cloud_msg(header: Header, points: ObjectPoints, types: MessageTypes | None = None) -> PointCloud2:
    """An unordered PointCloud2 (of `types`, default ROS 2's; height 1) of every object's points with their labels,
    in `header`'s frame; the layout sensor_msgs_py.point_cloud2.read_points and RViz read (CLOUD_FIELDS, native
    byte order)."""
    types = types or ros_message_types()
    dtype = np.dtype([(name, kind) for name, (_, kind) in CLOUD_FIELDS.items()])
    fields = [types.point_field(name=name, offset=dtype.fields[name][1], datatype=getattr(types.point_field, datatype),
                                count=1)
              for name, (datatype, _) in CLOUD_FIELDS.items()]
    cloud = np.empty(len(points.points), dtype)
    for axis, name in enumerate("xyz"):
        cloud[name] = points.points[:, axis]
    cloud["label"] = points.labels
    return types.point_cloud(header=header, height=1, width=len(cloud), fields=fields,
                             is_bigendian=not np.little_endian, point_step=dtype.itemsize,
                             row_step=dtype.itemsize * len(cloud), is_dense=True, data=cloud.view(np.uint8))


MARKER_NAMESPACES = ("gara_boxes", "gara_ids")  # a CUBE and a TEXT_VIEW_FACING marker per object, id = label


def markers_msg(header: Header, object_ids: list[str], points: ObjectPoints,
                types: MessageTypes | None = None) -> MarkerArray:
    """For RViz (a MarkerArray of `types`, default ROS 2's): a DELETEALL (objects of the previous frame vanish),
    then per object with depth points a translucent box of its extent at its centroid and its id above it, in its
    colour in ~/overlay."""
    types = types or ros_message_types()
    marker, vector3 = types.marker, types.vector3
    # every pose given: ROS 2's Quaternion defaults to w = 1, a rosbags store's (which knows no defaults) to 0
    markers = [marker(header=header, action=marker.DELETEALL, pose=_pose(types, (0.0, 0.0, 0.0)))]
    for index, object_id in enumerate(object_ids):
        if not points.counts[index]:
            continue
        (x, y, z), (dx, dy, dz) = points.centroids[index], np.maximum(points.extents[index], 0.01)  # RViz: no 0 size
        blue, green, red = (float(c) / 255 for c in label_colour(index + 1))
        box = marker(header=header, ns=MARKER_NAMESPACES[0], id=index + 1, type=marker.CUBE, action=marker.ADD,
                     pose=_pose(types, (x, y, z)), scale=vector3(**_xyz((dx, dy, dz))),
                     color=types.color(r=red, g=green, b=blue, a=0.4))
        text_height = float(np.clip(0.2 * max(dx, dy), 0.03, 0.3))
        label = marker(header=header, ns=MARKER_NAMESPACES[1], id=index + 1, type=marker.TEXT_VIEW_FACING,
                       action=marker.ADD, text=object_id, scale=vector3(z=text_height),
                       pose=_pose(types, (x, y - dy / 2 - text_height, z)),
                       color=types.color(r=red, g=green, b=blue, a=1.0))
        markers += [box, label]
    return types.marker_array(markers=markers)


def _pose(types: MessageTypes, position) -> Any:
    """A geometry_msgs/Pose at `position` (x, y, z), not rotated."""
    return types.pose(position=types.point(**_xyz(position)), orientation=types.quaternion(w=1.0))
