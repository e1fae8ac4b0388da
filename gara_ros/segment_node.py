"""segment_node: camera images + prompts in, masks out. rclpy glue over gara_ros.conversions and GaraPredictor.

Inference runs in a worker thread fed through a one-item slot, so the subscription
callbacks never block, whatever executor the node is spun in, and a slow model drops
frames instead of queueing them.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import PointStamped
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.node import Node
from rclpy.qos import QoSProfile, qos_profile_sensor_data
from rclpy.qos_overriding_options import QoSOverridingOptions
from rclpy.time import Time
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header
from std_srvs.srv import SetBool, Trigger

from gara_model.predictor import GaraPredictor, ObjectPrompt
from gara_ros import conversions
from gara_ros.frames import Frame, FrameBuffer, LatestSlot
from gara_ros.msg import SegmentPrompt, SegmentResult
from gara_ros.overlay import draw_overlay

# name -> (default, description); defaults match config/gara.yaml.
PARAMETERS = {
    "sam_variant": ("vit_b", "SAM image encoder: vit_b, vit_l, vit_h (ignored without a checkpoint)"),
    "checkpoint": ("", "SAM checkpoint file (.pth or .safetensors); empty = the embedded tiny model (with its GaRA "
                       "adapter unless 'adapter' is set)"),
    "adapter": ("", "GaRA adapter file; empty = plain SAM (with a checkpoint)"),
    "device": ("auto", "auto, cpu, cuda or cuda:N"),
    "precision": ("auto", "auto, fp32, fp16 or bf16"),
    "image_size": (0, "image encoder input size in pixels, a multiple of the patch size (issue 6, docs/basam.md); "
                      "0 = the model's native size"),
    "compile": (False, "torch.compile the encoder and decoder: slower start-up, faster frames on CUDA (docs/benchmarks.md)"),
    "multimask": (False, "decode 3 masks per object and keep the best-scoring one"),
    "mask_threshold": (0.0, "logit threshold for the binary masks"),
    "persist": (False, "apply the last prompts to every new frame until ~/clear"),
    "stamp_tolerance": (0.05, "seconds: a stamped prompt uses the buffered frame nearest in time within this"),
    "buffer_size": (30, "recent frames kept for stamped prompts"),
    "overlay": (True, "draw and publish ~/overlay"),
    "image_transport": ("raw", "raw (sensor_msgs/Image) or compressed (sensor_msgs/CompressedImage) on 'image'"),
    "max_objects": (16, "prompts with more objects are rejected"),
    "diagnostics_period": (1.0, "seconds between /diagnostics messages"),
}
OUTPUT_QOS = QoSProfile(depth=2)


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
class Job:
    """One inference: a frame and the prompts to apply to it."""

    frame: Frame
    prompts: list[ObjectPrompt]
    queued: float = field(default_factory=time.monotonic)  # latency is measured from here


class SegmentNode(Node):
    """Promptable segmentation of the newest camera frame with GaRA-SAM."""

    def __init__(self, **kwargs):
        super().__init__("segment_node", **kwargs)
        self._stop = threading.Event()
        self._worker = None  # started last; destroy_node may run on a half-built node (failed start-up)
        for name, (default, description) in PARAMETERS.items():
            self.declare_parameter(name, default, ParameterDescriptor(description=description, read_only=True))
        self.p = {name: self.get_parameter(name).value for name in PARAMETERS}
        if self.p["image_transport"] not in ("raw", "compressed"):
            raise ValueError(f"image_transport must be 'raw' or 'compressed', got {self.p['image_transport']!r}")

        self.predictor = GaraPredictor.from_files(
            sam_variant=self.p["sam_variant"], checkpoint=self.p["checkpoint"] or None,
            adapter=self.p["adapter"] or None, device=self.p["device"], precision=self.p["precision"],
            image_size=self.p["image_size"] or None, compile=self.p["compile"])
        source = self.p["checkpoint"] or "the embedded tiny model (no checkpoint configured)"
        self.get_logger().info(f"{self.predictor.model_name} on {self.predictor.device} from {source}")

        self.frames = FrameBuffer(self.p["buffer_size"])
        self.slot = LatestSlot()
        self.active: list[ObjectPrompt] = []  # persisted prompts
        self.enabled = True
        self.stats = {"received": 0, "processed": 0, "errors": 0, "latency_ms": 0.0, "stage_ms": {},
                      "stage_cpu_ms": {}}
        self._window = (time.monotonic(), 0, 0)  # (start, processed, errors) of this diagnostics window

        compressed = self.p["image_transport"] == "compressed"
        overrides = QoSOverridingOptions.with_default_policies()
        self.create_subscription(CompressedImage if compressed else Image, "image", self.on_image,
                                 qos_profile_sensor_data, qos_overriding_options=overrides)
        self.create_subscription(SegmentPrompt, "/gara/prompts", self.on_prompt, 10, qos_overriding_options=overrides)
        self.create_subscription(PointStamped, "clicks", self.on_click, 10)
        self.create_service(Trigger, "~/clear", self.on_clear)
        self.create_service(SetBool, "~/enable", self.on_enable)
        self.pub_mask = self.create_publisher(Image, "~/mask", OUTPUT_QOS)
        self.pub_labels = self.create_publisher(Image, "~/labels", OUTPUT_QOS)
        self.pub_overlay = self.create_publisher(Image, "~/overlay", OUTPUT_QOS)
        self.pub_result = self.create_publisher(SegmentResult, "~/result", OUTPUT_QOS)
        self.pub_diagnostics = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.create_timer(self.p["diagnostics_period"], self.publish_diagnostics)

        self._to_rgb = conversions.compressed_to_rgb if compressed else conversions.image_to_rgb
        self._worker = threading.Thread(target=self._work, name="gara_inference", daemon=True)
        self._worker.start()

    # --- callbacks: bookkeeping only, never inference -------------------------------------------
    def on_image(self, msg) -> None:
        frame = Frame(msg, Time.from_msg(msg.header.stamp).nanoseconds)
        self.frames.add(frame)
        self.stats["received"] += 1
        if self.enabled and self.active:
            self.slot.put(Job(frame, self.active))

    def on_prompt(self, msg: SegmentPrompt) -> None:
        stamp_ns = Time.from_msg(msg.header.stamp).nanoseconds
        frame = self.frames.find(stamp_ns, int(self.p["stamp_tolerance"] * 1e9))
        ids = [o.object_id for o in msg.objects]
        if frame is None:
            what = ("no image received yet" if stamp_ns == 0
                    else f"no buffered image within stamp_tolerance of stamp {stamp_ns} ns")
            self.get_logger().warning(f"prompt for objects {ids} ignored: {what}")
            return
        try:
            width, height = self._frame_size(frame.msg)
        except conversions.ConversionError as error:
            self.get_logger().warning(f"prompt for objects {ids} ignored: its image is unusable: {error}")
            return
        prompts, errors = conversions.prompts_from_msg(msg, width, height, self.p["max_objects"])
        for error in errors:
            self.get_logger().warning(f"bad prompt: {error}")
        if prompts and self.p["persist"]:
            self.active = prompts
        if prompts and self.enabled:
            self.slot.put(Job(frame, prompts))

    def on_click(self, msg: PointStamped) -> None:
        self.on_prompt(conversions.click_to_prompt(msg.point.x, msg.point.y))

    def on_clear(self, request, response):
        self.active = []
        self.slot.clear()
        response.success, response.message = True, "prompts cleared"
        return response

    def on_enable(self, request, response):
        self.enabled = request.data
        if not self.enabled:
            self.slot.clear()
        response.success, response.message = True, "inference " + ("enabled" if self.enabled else "paused")
        return response

    # --- worker ------------------------------------------------------------------------------------
    def _work(self) -> None:
        while not self._stop.is_set():
            job = self.slot.take(timeout=0.1)
            if job is not None and self.enabled:
                try:
                    self.process(job)
                except Exception as error:  # noqa: BLE001  one bad frame must never stop the worker
                    self.stats["errors"] += 1
                    self.get_logger().error(f"frame {job.frame.stamp_ns} ns skipped: {type(error).__name__}: {error}")

    def process(self, job: Job) -> None:
        """Encode the frame once, decode all objects in one call, publish every subscribed output.

        Times each stage (`stats["stage_ms"]`, CPU time in `stats["stage_cpu_ms"]`): convert, model, encode
        (masks -> messages), publish.
        """
        timer = StageTimer()
        rgb = self._to_rgb(job.frame.msg)
        timer.lap("convert")
        self.predictor.set_image(rgb)
        prediction = self.predictor.predict(job.prompts, multimask_output=self.p["multimask"],
                                            mask_threshold=self.p["mask_threshold"])
        timer.lap("model")
        masks, scores = conversions.best_masks(prediction.masks, prediction.iou_scores)
        ids = [p.object_id for p in job.prompts]
        header = job.frame.msg.header
        latency_ms = (time.monotonic() - job.queued) * 1e3
        gates = prediction.gates
        extents = [conversions.mask_box_area(mask) for mask in masks]
        outputs = [(self.pub_result, conversions.result_msg(
            header, ids, extents, scores, gates.high_rank_share if gates else 0.0,
            gates.mean_active_components if gates else 0.0, latency_ms))]
        if self.pub_mask.get_subscription_count():
            outputs.append((self.pub_mask, conversions.array_to_image(
                conversions.mask_union(masks, extents), "mono8", header)))
        if self.pub_labels.get_subscription_count():
            outputs.append((self.pub_labels, conversions.array_to_image(
                conversions.labels_from_masks(masks, extents), "mono16", header)))
        if self.p["overlay"] and self.pub_overlay.get_subscription_count():
            outputs.append((self.pub_overlay, conversions.array_to_image(
                draw_overlay(rgb, masks, ids, scores), "bgr8", header)))
        timer.lap("encode")
        for publisher, msg in outputs:
            publisher.publish(msg)
        timer.lap("publish")
        self.stats["processed"] += 1
        self.stats["latency_ms"] = latency_ms
        self.stats["stage_ms"], self.stats["stage_cpu_ms"] = timer.ms, timer.cpu_ms

    def _frame_size(self, msg) -> tuple[int, int]:
        """(width, height) of a buffered frame; compressed frames are decoded to find out (ConversionError)."""
        if isinstance(msg, Image):
            return msg.width, msg.height
        height, width = conversions.compressed_to_rgb(msg).shape[:2]
        return width, height

    # --- diagnostics -------------------------------------------------------------------------------
    def publish_diagnostics(self) -> None:
        now = time.monotonic()
        start, processed, errors = self._window
        rate = (self.stats["processed"] - processed) / max(now - start, 1e-6)
        failing = self.stats["errors"] > errors
        self._window = (now, self.stats["processed"], self.stats["errors"])
        stages = self.stats["stage_ms"]  # of the last processed frame
        values = {
            "rate_hz": f"{rate:.2f}", "latency_ms": f"{self.stats['latency_ms']:.1f}",
            "model_ms": f"{stages.get('model', 0.0):.1f}",
            "node_overhead_ms": f"{sum(stages.values()) - stages.get('model', 0.0):.1f}",
            "dropped_frames": str(self.slot.dropped), "frames_received": str(self.stats["received"]),
            "frame_errors": str(self.stats["errors"]), "device": str(self.predictor.device),
            "model": self.predictor.model_name, "enabled": str(self.enabled), "active_objects": str(len(self.active)),
        }
        status = DiagnosticStatus(
            level=DiagnosticStatus.WARN if failing else DiagnosticStatus.OK, name=f"{self.get_name()}: segmentation",
            hardware_id=str(self.predictor.device),
            message="frames failed conversion" if failing else "running" if self.enabled else "paused",
            values=[KeyValue(key=k, value=v) for k, v in values.items()])
        header = Header(stamp=self.get_clock().now().to_msg())
        self.pub_diagnostics.publish(DiagnosticArray(header=header, status=[status]))

    def destroy_node(self):
        self._stop.set()
        if self._worker is not None:
            self._worker.join()
        return super().destroy_node()


def main(args=None) -> int:
    rclpy.init(args=args)
    try:
        node = SegmentNode()
    except (FileNotFoundError, ValueError) as error:
        rclpy.logging.get_logger("segment_node").fatal(f"cannot start: {error}")
        rclpy.shutdown()
        return 1
    spin_until_shutdown(node)
    return 0


def spin_until_shutdown(node: Node) -> None:
    """Spins `node` until Ctrl-C or an external shutdown, then destroys it and shuts rclpy down."""
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, rclpy.executors.ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()
