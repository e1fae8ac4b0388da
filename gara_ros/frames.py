"""Frame bookkeeping between the subscription callbacks and the inference worker, and frame delivery. No rclpy."""

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
    """Holds at most one item: `put` replaces an untaken item (counted in `dropped`), `take` waits for one.

    A taken item is in progress until `done`; `idle` is true when nothing waits and nothing is in progress.
    """

    def __init__(self):
        self._item = None
        self._busy = False
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
            self._busy = item is not None
            return item

    def done(self) -> None:
        """The taken item is finished."""
        with self._cond:
            self._busy = False

    def idle(self) -> bool:
        with self._cond:
            return self._item is None and not self._busy

    def clear(self) -> None:
        with self._cond:
            self._item = None


@dataclass(frozen=True)
class Delivery:
    """Frames of one diagnostics period: received, and expected from the camera's rate (see DeliveryMonitor)."""

    received: int
    expected: int
    lost_reported: int  # lost in transport as counted by the middleware (0 where it does not count)
    period_ns: int | None  # the camera's frame period from the stamps; None before two frames with distinct stamps

    @property
    def camera_rate_hz(self) -> float:
        return 1e9 / self.period_ns if self.period_ns else 0.0


class DeliveryMonitor:
    """How many frames a camera sent against how many arrived, per period between `take` calls; thread-safe.

    Expected frames are estimated twice and the larger estimate is used:
    - from the gaps between received header stamps: the smallest gap among the last `history` is the camera's
      period, and a gap of k periods stands for k frames (k - 1 of them lost). Gaps longer than `max_gap_ns` (a
      paused camera), zero or backwards (a restarted one) stand for one frame;
    - from the middleware's count of lost messages (`lost`), where it reports one. When nearly every frame is lost,
      the few received stamps cannot tell the camera's rate, but this count can.
    """

    def __init__(self, history: int = 100, max_gap_ns: int = 1_000_000_000):
        self._gaps: deque[int] = deque(maxlen=history)
        self._max_gap_ns = max_gap_ns
        self._last_stamp_ns: int | None = None
        self._received = self._expected = self._lost = 0
        self._lock = threading.Lock()

    def add(self, stamp_ns: int) -> None:
        """A frame with this header stamp arrived."""
        with self._lock:
            gap = stamp_ns - self._last_stamp_ns if self._last_stamp_ns is not None else 0
            self._last_stamp_ns = stamp_ns
            if 0 < gap:
                self._gaps.append(gap)
            self._received += 1
            self._expected += max(1, round(gap / min(self._gaps))) if 0 < gap <= self._max_gap_ns else 1

    def lost(self, count: int) -> None:
        """The middleware reports `count` more messages lost on the image topic."""
        with self._lock:
            self._lost += count

    def take(self) -> Delivery:
        """This period's counts; the next period starts now."""
        with self._lock:
            delivery = Delivery(self._received, max(self._expected, self._received + self._lost), self._lost,
                                min(self._gaps) if self._gaps else None)
            self._received = self._expected = self._lost = 0
            return delivery
