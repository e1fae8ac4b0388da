"""The segmentation node's logic without rclpy: frames, prompts, followed objects, one job's processing into arrays
(masks, and 3D points from an aligned depth image), statistics.

A front end hands it the messages it receives and publishes what it returns: `segment_node.py` for live topics,
`replay.py` for a recorded bag. Messages are read field by field through gara_ros.conversions, so any object with
the same fields works (ROS 2's messages, or a rosbags type store's).
Nothing a sender puts in a message raises out of `on_frame`, `on_prompt`, `click` or `process`: each problem
is counted and becomes at most one log line per kind per few seconds (`ProblemLog`).
"""

from __future__ import annotations

import math
import threading
import time
from collections import Counter
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

import numpy as np

from gara_model.predictor import GaraPredictor
from gara_model.prompts import ObjectPrompt, validate_prompt
from gara_ros import conversions
from gara_ros.conversions import ConversionError
from gara_ros.depth import ObjectPoints, object_points
from gara_ros.frames import DeliveryMonitor, Frame, FrameBuffer
from gara_ros.overlay import draw_overlay
from gara_ros.tracking import FollowConfig, Planned, Status, Tracker

CLICK_ID = "click"  # object id of a click's one-point prompt
OUTPUT_ENCODINGS = {"mask": "mono8", "labels": "mono16", "overlay": "bgr8"}  # image outputs, in publishing order
# every output a front end publishes or records -> its message type, in publishing order
OUTPUT_TYPES = {"result": "gara_ros/msg/SegmentResult", **dict.fromkeys(OUTPUT_ENCODINGS, "sensor_msgs/msg/Image"),
                "points": "sensor_msgs/msg/PointCloud2", "markers": "visualization_msgs/msg/MarkerArray"}
OUTPUTS_3D = ("points", "markers")  # the outputs of frames with depth, only with use_depth
# A period whose received frames are fewer than this share of the expected ones (with at least LOSS_MIN_EXPECTED
# expected) is a transport problem.
LOSS_WARN_SHARE, LOSS_MIN_EXPECTED = 0.5, 5
TRANSPORT_ADVICE = (  # fits a ProblemLog line after "(N more ... not shown) received N of M expected frames in T s: "
    "frames lost in transport (large raw images on default Fast DDS transports): use the shared-memory profile on "
    "camera and node (fastdds_profile:=shm), image_transport: compressed, or a smaller image")

# kind -> log level. Problems are counted per kind and logged at most once per kind per ProblemLog.period.
PROBLEM_LEVELS = {
    "image": "error",  # unusable image message: stamp, encoding, size, undecodable data
    "prompt": "error",  # whole prompt rejected: stamp, no objects, too many objects
    "object": "error",  # objects of a prompt rejected for the image they apply to
    "no_frame": "warning",  # prompt with no buffered image to apply to
    "depth": "error",  # unusable depth image or camera info, or one that does not fit the colour image
    "no_depth": "warning",  # use_depth, but no depth image or camera info within stamp_tolerance of a frame
    "inference": "error",  # the model failed on a frame
    "transport": "warning",  # most frames lost before reaching the node
    "internal": "error",  # an unexpected exception caught in a front end's callback
}


def stamp_text(stamp_ns: int) -> str:
    return f"{stamp_ns / 1e9:.3f} s"


def object_names(ids: list[str], first: int = 4, width: int = 24) -> str:
    """'a', 'b', 'c', 'd' and 996 more: the first ids, each shortened to about `width` characters."""
    shown = ", ".join(repr(i if len(i) <= width else i[:width] + "...") for i in ids[:first])
    return shown + (f" and {len(ids) - first} more" if len(ids) > first else "")


class ProblemLog:
    """Counts problems by kind and logs at most one line per kind per `period` seconds, each line at most
    `max_chars` characters; a line after quiet ones says how many it stands for. Thread-safe.

    emit(level, line) writes a line; level is PROBLEM_LEVELS[kind].
    """

    def __init__(self, emit: Callable[[str, str], None], period: float = 5.0, max_chars: int = 300,
                 clock: Callable[[], float] = time.monotonic):
        self._emit, self.period, self.max_chars, self._clock = emit, period, max_chars, clock
        self._counts: Counter[str] = Counter()
        self._unlogged: Counter[str] = Counter()
        self._last_logged: dict[str, float] = {}
        self._lock = threading.Lock()

    def report(self, kind: str, message: str) -> None:
        now = self._clock()
        with self._lock:
            self._counts[kind] += 1
            if now - self._last_logged.get(kind, float("-inf")) < self.period:
                self._unlogged[kind] += 1
                return
            self._last_logged[kind] = now
            quiet, self._unlogged[kind] = self._unlogged[kind], 0
        line = " ".join(message.split())  # one line, whatever the message carries
        if quiet:
            line = f"({quiet} more {kind} problems not shown) {line}"
        if len(line) > self.max_chars:
            line = line[:self.max_chars - 3] + "..."
        self._emit(PROBLEM_LEVELS[kind], line)

    def counts(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)


def check_objects(prompts: list[ObjectPrompt], image_size: tuple[int, int],
                  max_points: int) -> tuple[list[ObjectPrompt], list[str]]:
    """The prompts valid for an image of `image_size` (H, W) (boxes clipped to it), and one error per rejected one.

    Each object needs a non-empty id not used before in the list and at most `max_points` points (10,000 points
    took the tiny model 15 s on a CPU), and passes the predictor's `validate_prompt`.
    """
    valid, errors, seen = [], [], set()
    for index, prompt in enumerate(prompts):
        try:
            if not prompt.object_id or prompt.object_id in seen:
                raise ValueError(f"object #{index}: object id {prompt.object_id!r} is empty or used twice")
            if len(prompt.points) > max_points:
                raise ValueError(f"object {prompt.object_id!r}: {len(prompt.points)} points, more than "
                                 f"max_points={max_points}")
            valid.append(validate_prompt(prompt, index, image_size))
            seen.add(prompt.object_id)
        except ValueError as error:
            errors.append(str(error))
    return valid, errors


class StageTimer:
    """Milliseconds per named stage, each from the previous `lap` (or creation) to its own: wall time in `ms`, and
    this thread's CPU time in `cpu_ms` (wall minus CPU = waiting for a core or the GIL on a busy machine)."""

    def __init__(self):
        self.ms: dict[str, float] = {}
        self.cpu_ms: dict[str, float] = {}
        self._last = (time.perf_counter(), time.thread_time())

    def lap(self, stage: str) -> None:
        now = (time.perf_counter(), time.thread_time())
        self.ms[stage], self.cpu_ms[stage] = ((a - b) * 1e3 for a, b in zip(now, self._last, strict=True))
        self._last = now


@dataclass(frozen=True)
class Settings:
    """The node parameters the core uses (segment_node.PARAMETERS describes them and holds the defaults)."""

    persist: bool
    track: bool
    track_min_score: float
    track_max_area_change: float
    stamp_tolerance: float  # seconds
    buffer_size: int
    max_objects: int
    max_points: int
    multimask: bool
    mask_threshold: float
    use_depth: bool
    max_depth: float  # metres
    depth_band: float  # metres

    def __post_init__(self):
        for name, valid, rule in (("stamp_tolerance", self.stamp_tolerance >= 0, ">= 0"),
                                  ("buffer_size", self.buffer_size >= 1, ">= 1"),
                                  ("max_objects", self.max_objects >= 1, ">= 1"),
                                  ("max_points", self.max_points >= 1, ">= 1"),
                                  ("mask_threshold", math.isfinite(self.mask_threshold), "a finite number")):
            if not valid:
                raise ValueError(f"{name} must be {rule}, got {getattr(self, name)!r}")

    @classmethod
    def from_parameters(cls, parameters: Mapping[str, Any]) -> Settings:
        """The settings among the node's parameters (name -> value), as every front end reads them."""
        return cls(**{setting.name: parameters[setting.name] for setting in fields(cls)})


def follow_config(settings: Settings) -> FollowConfig:
    """Track mode's rules for when a followed object is lost, from the node's settings."""
    return FollowConfig(min_score=settings.track_min_score, max_area_change=settings.track_max_area_change)


def load_predictor(parameters: Mapping[str, Any]) -> GaraPredictor:
    """The model the node's parameters name (sam_variant, checkpoint, adapter, device, precision, image_size,
    compile, backend, onnx_dir; an empty file name or a zero size means none)."""
    return GaraPredictor.from_files(
        sam_variant=parameters["sam_variant"], checkpoint=parameters["checkpoint"] or None,
        adapter=parameters["adapter"] or None, device=parameters["device"], precision=parameters["precision"],
        image_size=parameters["image_size"] or None, compile=parameters["compile"], backend=parameters["backend"],
        onnx_dir=parameters["onnx_dir"] or None)


@dataclass(frozen=True)
class Job:
    """One inference: a frame and the prompts to apply to it, checked against the frame once it is decoded."""

    frame: Frame
    prompts: list[ObjectPrompt] | None  # None: the followed objects (track mode), planned when the job is processed
    queued: float = field(default_factory=time.monotonic)  # latency is measured from here


@dataclass
class Output:
    """A processed job: O objects (those that passed the checks, then in track mode the lost ones), arrays at the
    frame's size (H, W)."""

    frame: Frame
    object_ids: list[str]
    statuses: list[Status]  # (O,)
    scores: np.ndarray  # (O,) predicted IoU of the published masks (0 for lost objects)
    extents: list[tuple[tuple[float, float, float, float], int]]  # per object: XYXY mask box, area (mask_box_area)
    points: ObjectPoints | None  # 3D of each object (use_depth and a matching depth image), else None
    high_rank_share: float  # the image's gate summary; 0 for plain SAM
    mean_active_components: float
    latency_ms: float  # from queueing the job to the end of inference
    images: dict[str, np.ndarray]  # the requested of OUTPUT_ENCODINGS: mask (H,W) uint8, labels (H,W) uint16,
    #                                overlay (H,W,3) uint8 BGR
    timer: StageTimer  # convert, model, encode so far; the front end adds publish

    def messages(self, types: conversions.MessageTypes | None = None,
                 wanted: Collection[str] | None = None) -> dict[str, Any]:
        """"result", the images and, for a frame with depth, "points" and "markers" (OUTPUT_TYPES), as messages of
        `types` (default ROS 2's): what the node publishes and the replay records. Each has the frame's header; the
        3D ones the depth image's frame_id. `wanted`: the outputs to build besides "result" (None: all there are;
        the images are those `process` made)."""
        header = self.frame.msg.header
        messages = {"result": conversions.result_msg(header, self.object_ids, self.extents, self.scores,
                                                     self.high_rank_share, self.mean_active_components,
                                                     self.latency_ms, self.statuses, self.points, types)}
        for name, pixels in self.images.items():
            if wanted is None or name in wanted:
                messages[name] = conversions.array_to_image(pixels, OUTPUT_ENCODINGS[name], header, types)
        if self.points is None:
            return messages
        types = types or conversions.ros_message_types()
        header_3d = types.header(stamp=header.stamp, frame_id=self.points.frame_id or header.frame_id)
        if wanted is None or "points" in wanted:
            messages["points"] = conversions.cloud_msg(header_3d, self.points, types)
        if wanted is None or "markers" in wanted:
            messages["markers"] = conversions.markers_msg(header_3d, self.object_ids, self.points, types)
        return messages


@dataclass
class Stats:
    """Counters since start and the last processed frame's times."""

    received: int = 0  # frames buffered
    prompts: int = 0  # prompt messages and clicks handled, accepted or not
    processed: int = 0  # jobs published
    failed: int = 0  # jobs skipped for an unusable image or a failed inference
    latency_ms: float = 0.0
    stage_ms: dict[str, float] = field(default_factory=dict)
    stage_cpu_ms: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Health:
    """One diagnostics report: a warning or not, a one-line summary and named values."""

    warn: bool
    message: str
    values: dict[str, str]


class SegmentCore:
    """Frames and prompts in, jobs out; a job in, arrays and result fields out. Thread-safe: callbacks and the
    worker may run in different threads.

    predictor: the model, used only by `process`. decode: image message -> (H,W,3) uint8 RGB (raises
    ConversionError). emit(level, line): the front end's logger. submit(job): hands a job to whatever runs
    `process` (the node's worker); it is called before the frame or prompt that made the job is counted.
    """

    def __init__(self, predictor: GaraPredictor, decode: Callable[[Any], np.ndarray], settings: Settings,
                 emit: Callable[[str, str], None], submit: Callable[[Job], None]):
        self.predictor, self.decode, self.settings, self.submit = predictor, decode, settings, submit
        self.problems = ProblemLog(emit)
        self.frames = FrameBuffer(settings.buffer_size)
        self.depth_frames = FrameBuffer(settings.buffer_size)  # depth images, unconverted (use_depth)
        self.camera_infos = FrameBuffer(settings.buffer_size)  # their sensor_msgs/CameraInfo
        self.delivery = DeliveryMonitor()
        self._active: list[ObjectPrompt] = []  # persisted prompts
        self.tracker = Tracker(follow_config(settings), settings.max_objects)
        self._enabled = True
        self._stats = Stats()
        self._window = (time.monotonic(), Stats())  # start and stats of the diagnostics period
        self._lock = threading.Lock()

    # --- inputs (callbacks: bookkeeping only) --------------------------------------------------------
    def on_frame(self, msg) -> None:
        """Buffers a received image message, unconverted, and submits the job for the persisted prompts or the
        followed objects, if any."""
        try:
            frame = Frame(msg, conversions.stamp_to_ns(msg.header.stamp))
        except ConversionError as error:
            self.problems.report("image", f"image ignored: {error}")
            return
        self.frames.add(frame)
        self.delivery.add(frame.stamp_ns)
        with self._lock:
            job = None
            if self._enabled and self.settings.track:
                job = Job(frame, None) if self.tracker.following() else None
            elif self._enabled and self._active:
                job = Job(frame, self._active)
        if job is not None:
            self.submit(job)
        self._count("received")

    def on_depth(self, msg) -> None:
        """Buffers a received aligned depth image, unconverted; a frame takes the one nearest its stamp."""
        self._buffer(self.depth_frames, msg, "depth image")

    def on_camera_info(self, msg) -> None:
        """Buffers the depth image's sensor_msgs/CameraInfo; a frame takes the one nearest its stamp."""
        self._buffer(self.camera_infos, msg, "camera info")

    def _buffer(self, frames: FrameBuffer, msg, what: str) -> None:
        try:
            frames.add(Frame(msg, conversions.stamp_to_ns(msg.header.stamp)))
        except ConversionError as error:
            self.problems.report("depth", f"{what} ignored: {error}")

    def on_prompt(self, msg) -> None:
        """A SegmentPrompt message: its stamp names the frame (0 = the latest); its removals apply first."""
        prompts = conversions.prompts_from_msg(msg)
        try:
            stamp_ns = conversions.stamp_to_ns(msg.header.stamp)
        except ConversionError as error:
            self.problems.report("prompt", f"prompt for {object_names([p.object_id for p in prompts])} ignored: "
                                           f"{error}")
            self._count("prompts")
            return
        removals = list(getattr(msg, "remove", ()))  # none in a bag recorded before SegmentPrompt had `remove`
        if removals:
            self.remove(removals)
            if not prompts:
                self._count("prompts")
                return
        self.prompt(prompts, stamp_ns)

    def click(self, x: float, y: float) -> None:
        """A pixel click: a one-point foreground object CLICK_ID on the latest frame."""
        self.prompt([ObjectPrompt(CLICK_ID, points=np.array([[x, y]], float), labels=np.array([1]))], 0)

    def prompt(self, prompts: list[ObjectPrompt], stamp_ns: int) -> None:
        """Prompts for the buffered frame nearest `stamp_ns` within stamp_tolerance (0 = the latest frame).

        Whole-prompt checks happen here; each object is checked against its frame in `process`.
        With persist, the prompts replace the persisted ones. With track, new ids join the followed objects and
        known ids are prompted again; the prompts apply to the next frame processed (this one, unless a newer
        frame's job replaces it).
        """
        job = self._prompt_job(prompts, stamp_ns)
        if job is not None:
            self.submit(job)
        self._count("prompts")

    def _prompt_job(self, prompts: list[ObjectPrompt], stamp_ns: int) -> Job | None:
        ids = [p.object_id for p in prompts]
        if not prompts:
            self.problems.report("prompt", "prompt with no objects ignored")
            return None
        if len(prompts) > self.settings.max_objects:
            self.problems.report("prompt", f"prompt with {len(prompts)} objects ({object_names(ids)}) ignored: "
                                           f"more than max_objects={self.settings.max_objects}")
            return None
        frame = self.frames.find(stamp_ns, int(self.settings.stamp_tolerance * 1e9))
        if frame is None:
            what = ("no image received yet" if stamp_ns == 0
                    else f"no buffered image within stamp_tolerance of its stamp {stamp_text(stamp_ns)}")
            self.problems.report("no_frame", f"prompt for {object_names(ids)} ignored: {what}")
            return None
        if self.settings.track:
            errors = self.tracker.prompt(prompts)
            if errors:
                self.problems.report("object", f"{len(errors)} of {len(prompts)} objects ignored: "
                                               + "; ".join(errors[:3]))
            return Job(frame, None) if self._enabled and self.tracker.following() else None
        with self._lock:
            if self.settings.persist:
                self._active = prompts
            return Job(frame, prompts) if self._enabled else None

    def remove(self, object_ids: list[str]) -> None:
        """Stops following these ids (track) and drops them from the persisted prompts (persist)."""
        self.tracker.remove(object_ids)
        with self._lock:
            self._active = [p for p in self._active if p.object_id not in object_ids]

    def update(self, settings: Settings) -> None:
        """Applies new settings from the next frame or prompt on (run-time parameters); leaving persist drops the
        persisted prompts, switching track on or off drops the followed objects. buffer_size keeps the value the
        core was built with."""
        if settings.track != self.settings.track:
            self.tracker.clear()
        self.tracker.config, self.tracker.max_objects = follow_config(settings), settings.max_objects
        with self._lock:
            if not settings.persist:
                self._active = []
            self.settings = settings

    def clear(self) -> None:
        """Drops the persisted prompts and the followed objects."""
        self.tracker.clear()
        with self._lock:
            self._active = []

    @property
    def enabled(self) -> bool:
        return self._enabled

    @enabled.setter
    def enabled(self, value: bool) -> None:
        with self._lock:
            self._enabled = bool(value)

    @property
    def active(self) -> list[ObjectPrompt]:
        """The persisted prompts."""
        with self._lock:
            return self._active

    # --- one job (the worker) -----------------------------------------------------------------------
    def process(self, job: Job, wanted: Collection[str]) -> Output | None:
        """Decodes the frame once, checks the prompts against its size, encodes it once and decodes all objects in
        one call; None when paused, when the frame is unusable or the model fails (reported), or when no object
        is valid. `wanted`: which of OUTPUT_ENCODINGS to build.

        Objects rejected for a frame are also dropped from the persisted prompts they came from. In track mode the
        followed objects are planned here (tracking.Tracker), and their masks checked and kept for the next frame.
        With use_depth, each object's mask is back-projected with the depth image nearest the frame's stamp.
        """
        if not self._enabled:
            return None
        timer = StageTimer()
        name = f"frame {stamp_text(job.frame.stamp_ns)}"
        try:
            rgb = self.decode(job.frame.msg)
        except ConversionError as error:
            self._count_failure("image", f"{name} skipped: {error}")
            return None
        planned = self.tracker.plan(rgb.shape[:2]) if job.prompts is None else []
        given = job.prompts if job.prompts is not None else [p.prompt for p in planned if p.prompt is not None]
        prompts, errors = check_objects(given, rgb.shape[:2], self.settings.max_points)
        if errors:
            self.problems.report("object", f"{name}: {len(errors)} of {len(given)} objects ignored: "
                                           + "; ".join(errors[:3]))
            valid = {p.object_id for p in prompts}
            rejected = [entry for entry in planned if entry.prompt is not None and entry.object_id not in valid]
            for entry in rejected:
                self.tracker.reject(entry)
            if rejected:  # a followed object whose new prompt was refused goes on from its previous mask
                planned = self.tracker.plan(rgb.shape[:2])
                prompts, _ = check_objects([p.prompt for p in planned if p.prompt is not None], rgb.shape[:2],
                                           self.settings.max_points)  # any newer refusals: the next frame's
            with self._lock:
                if self._active is job.prompts:
                    self._active = prompts
        timer.lap("convert")
        if not prompts:
            return None
        try:
            self.predictor.set_image(rgb)
            prediction = self.predictor.predict(prompts, multimask_output=self.settings.multimask,
                                                mask_threshold=self.settings.mask_threshold)
        except Exception as error:  # noqa: BLE001  e.g. CUDA out of memory: this frame only
            self._count_failure("inference", f"{name} skipped: {type(error).__name__}: {error}")
            return None
        timer.lap("model")
        latency_ms = (time.monotonic() - job.queued) * 1e3
        masks, scores = conversions.best_masks(prediction.masks, prediction.iou_scores)
        ids = [p.object_id for p in prompts]
        statuses = [Status.PROMPTED] * len(ids)
        if job.prompts is None:
            statuses, lost_ids = self._follow(planned, ids, masks, scores)
            ids += lost_ids
            statuses += [Status.LOST] * len(lost_ids)
            scores = np.concatenate([scores, np.zeros(len(lost_ids), scores.dtype)])
        extents = [conversions.mask_box_area(mask) for mask in masks]  # lost objects: zeros, no mask
        extents += [((0.0, 0.0, 0.0, 0.0), 0)] * (len(ids) - len(masks))
        images = {}
        if "mask" in wanted:
            images["mask"] = conversions.mask_union(masks, extents[:len(masks)])
        if "labels" in wanted:
            images["labels"] = conversions.labels_from_masks(masks, extents[:len(masks)])
        if "overlay" in wanted:
            images["overlay"] = draw_overlay(rgb, masks, ids[:len(masks)], scores[:len(masks)])
        timer.lap("encode")
        points = self._points(job.frame, name, masks, extents, len(ids)) if self.settings.use_depth else None
        if points is not None:
            timer.lap("depth")
        gates = prediction.gates
        return Output(job.frame, ids, statuses, scores, extents, points, gates.high_rank_share if gates else 0.0,
                      gates.mean_active_components if gates else 0.0, latency_ms, images, timer)

    def _follow(self, planned: list[Planned], ids: list[str], masks: np.ndarray,
                scores: np.ndarray) -> tuple[list[Status], list[str]]:
        """Track mode: the segmented objects' statuses (their masks kept as seeds, or the object lost: then its mask
        and score are cleared in place), and the ids of the objects that were lost before this frame."""
        segmented = {entry.object_id: entry for entry in planned if entry.prompt is not None}
        statuses = self.tracker.update([segmented[i] for i in ids], masks, scores)
        for index, status in enumerate(statuses):
            if status == Status.LOST:
                masks[index], scores[index] = False, 0.0
        return statuses, [entry.object_id for entry in planned if entry.prompt is None]

    def _points(self, frame: Frame, name: str, masks: np.ndarray,
                extents: list[tuple[tuple[float, float, float, float], int]], count: int) -> ObjectPoints | None:
        """Each object's 3D points from the depth image and camera info nearest the frame's stamp; None (reported)
        when there are none within stamp_tolerance or they are unusable."""
        tolerance = int(self.settings.stamp_tolerance * 1e9)
        depth, info = (frames.find(frame.stamp_ns, tolerance) for frames in (self.depth_frames, self.camera_infos))
        if depth is None or info is None:
            missing = "depth image" if depth is None else "camera info"
            self.problems.report("no_depth", f"{name}: no {missing} within stamp_tolerance, no 3D for it")
            return None
        try:
            metres = conversions.depth_to_metres(depth.msg)
            intrinsics = conversions.intrinsics_from_camera_info(info.msg)
        except ConversionError as error:
            self.problems.report("depth", f"{name}: no 3D: {error}")
            return None
        height, width = masks.shape[1:]
        sizes = {"depth image": metres.shape[::-1], "camera info": (intrinsics.width, intrinsics.height)}
        for what, size in sizes.items():
            if tuple(size) != (width, height):
                self.problems.report("depth", f"{name}: no 3D: {what} is {size[0]} x {size[1]}, the colour image "
                                              f"{width} x {height} (use a depth image aligned to the colour one)")
                return None
        return object_points(metres, masks, [box for box, _ in extents[:len(masks)]], intrinsics,
                             self.settings.max_depth, self.settings.depth_band, depth.msg.header.frame_id, count)

    def record(self, output: Output) -> None:
        """Counts a published output and keeps its times."""
        with self._lock:
            self._stats.processed += 1
            self._stats.latency_ms = output.latency_ms
            self._stats.stage_ms, self._stats.stage_cpu_ms = output.timer.ms, output.timer.cpu_ms

    # --- statistics ---------------------------------------------------------------------------------
    def stats(self) -> Stats:
        """A consistent copy of the counters."""
        with self._lock:
            return replace(self._stats)

    def diagnostics(self) -> Health:
        """The period since the last call: processing rate, frames received against expected, failures; a
        transport warning is also logged. Starts the next period."""
        now, stats, delivery = time.monotonic(), self.stats(), self.delivery.take()
        followed, lost = self.tracker.counts()
        start, before = self._window
        self._window = (now, stats)
        failing = stats.failed > before.failed
        losing = delivery.expected >= LOSS_MIN_EXPECTED and delivery.received < LOSS_WARN_SHARE * delivery.expected
        if losing:
            self.problems.report("transport", f"received {delivery.received} of {delivery.expected} expected "
                                              f"frames in {now - start:.1f} s: {TRANSPORT_ADVICE}")
        stages = stats.stage_ms  # of the last processed frame
        values = {
            "rate_hz": f"{(stats.processed - before.processed) / max(now - start, 1e-6):.2f}",
            "latency_ms": f"{stats.latency_ms:.1f}", "model_ms": f"{stages.get('model', 0.0):.1f}",
            "node_overhead_ms": f"{sum(stages.values()) - stages.get('model', 0.0):.1f}",
            "camera_rate_hz": f"{delivery.camera_rate_hz:.2f}",
            "period_frames_received": str(delivery.received), "period_frames_expected": str(delivery.expected),
            "period_frames_lost_in_transport": str(delivery.lost_reported),
            "frames_received": str(stats.received), "frame_errors": str(stats.failed),
            "prompts": str(stats.prompts), "device": str(self.predictor.device), "model": self.predictor.model_name,
            "enabled": str(self._enabled),
            "active_objects": str(followed if self.settings.track else len(self.active)), "lost_objects": str(lost),
            **{f"problems_{kind}": str(count) for kind, count in sorted(self.problems.counts().items())},
        }
        messages = ["frames failed" if failing else "", "most frames lost in transport" if losing else ""]
        message = "; ".join(m for m in messages if m) or ("running" if self._enabled else "paused")
        return Health(failing or losing, message, values)

    def _count(self, counter: str) -> None:
        with self._lock:
            setattr(self._stats, counter, getattr(self._stats, counter) + 1)

    def _count_failure(self, kind: str, message: str) -> None:
        self._count("failed")
        self.problems.report(kind, message)
