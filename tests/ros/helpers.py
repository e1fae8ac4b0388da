"""Message factories and the test scene for tests/ros."""

import numpy as np
from builtin_interfaces.msg import Time
from geometry_msgs.msg import Point
from std_msgs.msg import Header

from gara_ros.msg import ObjectPrompt, SegmentPrompt


def stamp(seconds: float) -> Time:
    return Time(sec=int(seconds), nanosec=int(round((seconds % 1) * 1e9)))


def scene(width=96, height=64, square=(30, 20, 60, 44)) -> np.ndarray:
    """(H,W,3) uint8 RGB: dark background with one bright XYXY square."""
    rgb = np.full((height, width, 3), 30, np.uint8)
    x1, y1, x2, y2 = square
    rgb[y1:y2, x1:x2] = (220, 200, 40)
    return rgb


def prompt(*objects, t: float = 0.0) -> SegmentPrompt:
    return SegmentPrompt(header=Header(stamp=stamp(t), frame_id="camera"), objects=list(objects))


def point_object(object_id, x, y, label=ObjectPrompt.LABEL_FOREGROUND) -> ObjectPrompt:
    return ObjectPrompt(object_id=object_id, points=[Point(x=float(x), y=float(y))], labels=[label])


def box_object(object_id, box) -> ObjectPrompt:
    return ObjectPrompt(object_id=object_id, has_box=True, box=[float(v) for v in box])
