"""Frame bookkeeping between the subscription callbacks and the inference worker. No rclpy."""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Frame:
    """A received image message, kept unconverted until the worker needs it."""

    msg: Any  # sensor_msgs/Image or CompressedImage
    stamp_ns: int  # msg.header.stamp in nanoseconds


class FrameBuffer:
    """The last `size` frames; thread-safe."""

    def __init__(self, size: int):
        if size < 1:
            raise ValueError(f"size must be >= 1, got {size}")
        self._frames: deque[Frame] = deque(maxlen=size)
        self._lock = threading.Lock()

    def add(self, frame: Frame) -> None:
        with self._lock:
            self._frames.append(frame)

    def latest(self) -> Frame | None:
        with self._lock:
            return self._frames[-1] if self._frames else None

    def find(self, stamp_ns: int, tolerance_ns: int) -> Frame | None:
        """The latest frame for stamp 0, else the frame with the nearest stamp within `tolerance_ns`, else None."""
        with self._lock:
            if stamp_ns == 0:
                return self._frames[-1] if self._frames else None
            nearest = min(self._frames, key=lambda f: abs(f.stamp_ns - stamp_ns), default=None)
        if nearest is None or abs(nearest.stamp_ns - stamp_ns) > tolerance_ns:
            return None
        return nearest


class LatestSlot:
    """Holds at most one item: `put` replaces an untaken item (counted in `dropped`), `take` waits for one."""

    def __init__(self):
        self._item = None
        self._cond = threading.Condition()
        self.dropped = 0

    def put(self, item: Any) -> None:
        with self._cond:
            self.dropped += self._item is not None
            self._item = item
            self._cond.notify()

    def take(self, timeout: float | None = None) -> Any:
        """The item, or None after `timeout` seconds without one."""
        with self._cond:
            self._cond.wait_for(lambda: self._item is not None, timeout)
            item, self._item = self._item, None
            return item

    def clear(self) -> None:
        with self._cond:
            self._item = None
