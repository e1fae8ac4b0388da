"""Small recorded bags for the replay tests, written with rosbags in the real rosbag2 formats (sqlite3, MCAP), and the
true masks of their scene."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from rosbags.rosbag2 import CompressionFormat, CompressionMode, Writer

from gara_ros.bag import PROMPT_TYPE, STORAGES, StoreConstructor, message_types, typestore
from gara_ros.conversions import array_to_image

IMAGE_TOPIC, PROMPT_TOPIC = "/camera/image_raw", "/gara/prompts"
DEPTH_TOPIC, INFO_TOPIC = "/camera/aligned_depth/image_raw", "/camera/aligned_depth/camera_info"
START_NS = 1_700_000_000 * 10**9  # the first image's header stamp
PERIOD_NS = 100_000_000  # 10 Hz
DELAY_NS = 5_000_000  # recorded 5 ms after its stamp
# The scene (128 x 96): a yellow square moving 2 px right per frame, prompted by one point inside it on every
# frame up to 8, and a blue slab that stays, prompted by its box. The tiny model gets IoU 0.89 to 0.95 for each on
# frames 0 to 5 (0.90 to 0.95 from jpeg); the square's frame-0 mask on frame 5 would score 0.5.
SQUARE_POINT, SLAB_BOX = (36.0, 32.0), (80.0, 55.0, 111.0, 84.0)
IOU_BOUND = 0.8
# Depth of the scene (aligned to it, 16UC1 millimetres): a wall 2 m away, the square's face at 1.2 m, the slab's at
# 1.0 m, seen by a pinhole camera with these intrinsics (pixels).
WALL_M, SQUARE_M, SLAB_M = 2.0, 1.2, 1.0
FX = FY = 100.0
CX, CY = 63.5, 47.5
DEPTH_FRAME = "camera_depth_optical"


def scene(index: int) -> tuple[np.ndarray, np.ndarray]:
    """Frame `index`: (H,W,3) uint8 RGB and the true (2,H,W) bool masks of square and slab."""
    rgb, masks = np.full((96, 128, 3), 30, np.uint8), np.zeros((2, 96, 128), bool)
    x = 20 + 2 * index
    rgb[20:44, x:x + 30], masks[0, 20:44, x:x + 30] = (220, 200, 40), True
    rgb[55:85, 80:112], masks[1, 55:85, 80:112] = (40, 170, 230), True
    return rgb, masks


def scene_depth(index: int) -> np.ndarray:
    """Frame `index`'s true depth: (H,W) float32 metres."""
    _, (square, slab) = scene(index)
    depth = np.full(square.shape, WALL_M, np.float32)
    depth[square], depth[slab] = SQUARE_M, SLAB_M
    return depth


def depth_msgs(index: int) -> tuple:
    """Frame `index`'s depth image (16UC1) and camera info, stamped as its colour image, in DEPTH_FRAME."""
    millimetres = np.round(scene_depth(index) * 1000).astype(np.uint16)
    store = typestore()
    info = StoreConstructor(store, "sensor_msgs/msg/CameraInfo")(
        header=header(stamp_ns(index), DEPTH_FRAME), height=millimetres.shape[0], width=millimetres.shape[1],
        distortion_model="plumb_bob", k=np.array([FX, 0, CX, 0, FY, CY, 0, 0, 1], np.float64))
    return array_to_image(millimetres, "16UC1", header(stamp_ns(index), DEPTH_FRAME), message_types(store)), info


def stamp_ns(index: int) -> int:
    return START_NS + index * PERIOD_NS


def header(time_ns: int, frame_id: str = "camera"):
    types = typestore().types
    return types["std_msgs/msg/Header"](stamp=types["builtin_interfaces/msg/Time"](
        sec=time_ns // 10**9, nanosec=time_ns % 10**9), frame_id=frame_id)


def image_msg(rgb: np.ndarray, time_ns: int, compressed: bool = False, encoding: str = "rgb8"):
    """A sensor_msgs/Image (rgb8, or `encoding` with the same bytes) or a CompressedImage (jpeg) of the store."""
    if compressed:
        _, jpeg = cv2.imencode(".jpg", rgb[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 90])
        return typestore().types["sensor_msgs/msg/CompressedImage"](header=header(time_ns), format="jpeg",
                                                                    data=jpeg.reshape(-1))
    msg = array_to_image(rgb, "rgb8", header(time_ns), message_types(typestore()))
    msg.encoding = encoding
    return msg


def prompt_msg(time_ns: int, square: bool = True, slab: bool = True, remove: tuple[str, ...] = ()):
    """A SegmentPrompt stamped `time_ns` (0 = the latest image): the square by its point, the slab by its box, and
    the ids in `remove`."""
    types = typestore().types
    prompt_object, point = types["gara_ros/msg/ObjectPrompt"], types["geometry_msgs/msg/Point"]
    objects = []
    if square:
        objects.append(prompt_object(object_id="square", points=[point(x=SQUARE_POINT[0], y=SQUARE_POINT[1], z=0.0)],
                                     labels=np.array([1], np.uint8), has_box=False, box=np.zeros(4, np.float32)))
    if slab:
        objects.append(prompt_object(object_id="slab", points=[], labels=np.zeros(0, np.uint8), has_box=True,
                                     box=np.array(SLAB_BOX, np.float32)))
    return StoreConstructor(typestore(), PROMPT_TYPE)(header=header(time_ns), objects=objects, remove=list(remove))


@dataclass
class Recording:
    """A bag written by `record`: where it is and what it holds."""

    path: Path
    frames: int
    truth: list[np.ndarray]  # per frame the true (2,H,W) masks


def record(path: Path, frames: int = 6, storage: str = "mcap", compressed: bool = False,
           prompts: list[tuple[int, object]] | None = None, encoding: str = "rgb8", zstd: bool = False,
           image_topic: str = IMAGE_TOPIC, depth: bool = False, store=None) -> Recording:
    """A rosbag2 folder with `frames` images of the scene on `image_topic`, `prompts` (recorded at (log time,
    SegmentPrompt)) on PROMPT_TOPIC and, with `depth`, each frame's depth image and camera info (recorded just after
    its image) on DEPTH_TOPIC and INFO_TOPIC, as `ros2 bag record` would write it; the messages' definitions are
    `store`'s (default: gara_ros.bag.typestore())."""
    store = store or typestore()
    writer = Writer(path, version=9, storage_plugin=STORAGES[storage])
    if zstd:
        writer.set_compression(CompressionMode.STORAGE, CompressionFormat.ZSTD)
    messages = []
    truth = []
    for index in range(frames):
        rgb, masks = scene(index)
        truth.append(masks)
        msg = image_msg(rgb, stamp_ns(index), compressed, encoding)
        messages.append((stamp_ns(index) + DELAY_NS, image_topic, msg))
        if depth:
            depth_image, info = depth_msgs(index)
            messages += [(stamp_ns(index) + DELAY_NS + 1000, DEPTH_TOPIC, depth_image),
                         (stamp_ns(index) + DELAY_NS + 2000, INFO_TOPIC, info)]
    messages += [(log_time, PROMPT_TOPIC, msg) for log_time, msg in prompts or []]
    with writer:
        connections = {image_topic: writer.add_connection(
            image_topic, "sensor_msgs/msg/CompressedImage" if compressed else "sensor_msgs/msg/Image", typestore=store)}
        if prompts:
            connections[PROMPT_TOPIC] = writer.add_connection(PROMPT_TOPIC, PROMPT_TYPE, typestore=store)
        if depth:
            connections[DEPTH_TOPIC] = writer.add_connection(DEPTH_TOPIC, "sensor_msgs/msg/Image", typestore=store)
            connections[INFO_TOPIC] = writer.add_connection(INFO_TOPIC, "sensor_msgs/msg/CameraInfo", typestore=store)
        for log_time, topic, msg in sorted(messages, key=lambda m: m[0]):
            writer.write(connections[topic], log_time, store.serialize_cdr(msg, connections[topic].msgtype))
    return Recording(path, frames, truth)
