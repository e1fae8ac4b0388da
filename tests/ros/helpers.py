"""Message factories, the test scene and a core recorder for tests/ros."""

from dataclasses import replace

import numpy as np
from builtin_interfaces.msg import Time
from geometry_msgs.msg import Point
from std_msgs.msg import Header

from gara_ros import conversions
from gara_ros.core import SegmentCore, Settings
from gara_ros.msg import ObjectPrompt, SegmentPrompt

SETTINGS = Settings(persist=False, track=False, track_min_score=0.3, track_max_area_change=3.0, stamp_tolerance=0.05,
                    buffer_size=30, max_objects=16, max_points=64, multimask=False, mask_threshold=0.0,
                    use_depth=False, max_depth=10.0, depth_band=0.5)


def stamp(seconds: float) -> Time:
    return Time(sec=int(seconds), nanosec=int(round((seconds % 1) * 1e9)))


def scene(width=96, height=64, square=(30, 20, 60, 44)) -> np.ndarray:
    """(H,W,3) uint8 RGB: dark background with one bright XYXY square."""
    rgb = np.full((height, width, 3), 30, np.uint8)
    x1, y1, x2, y2 = square
    rgb[y1:y2, x1:x2] = (220, 200, 40)
    return rgb


def prompt(*objects, t: float = 0.0, remove=()) -> SegmentPrompt:
    return SegmentPrompt(header=Header(stamp=stamp(t), frame_id="camera"), objects=list(objects), remove=list(remove))


def point_object(object_id, x, y, label=ObjectPrompt.LABEL_FOREGROUND) -> ObjectPrompt:
    return ObjectPrompt(object_id=object_id, points=[Point(x=float(x), y=float(y))], labels=[label])


def box_object(object_id, box) -> ObjectPrompt:
    return ObjectPrompt(object_id=object_id, has_box=True, box=[float(v) for v in box])


class Recorder:
    """A SegmentCore (SETTINGS with `settings` changed) with its submitted jobs and log lines."""

    def __init__(self, predictor, **settings):
        self.jobs, self.lines = [], []
        self.core = SegmentCore(predictor, conversions.image_to_rgb, replace(SETTINGS, **settings),
                                lambda level, line: self.lines.append(line), self.jobs.append)

    def frame(self, t, rgb=None, encoding="rgb8"):
        msg = conversions.array_to_image(scene() if rgb is None else rgb, encoding,
                                         Header(stamp=stamp(t), frame_id="camera"))
        self.core.on_frame(msg)
        return msg
