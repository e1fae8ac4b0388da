"""segment_node: camera images + prompts in, masks out. The rclpy front end over gara_ros.core.SegmentCore.

This file holds what is ROS: parameters, QoS, subscriptions, services, publishing and diagnostics. Inference runs
in a worker thread fed through a one-item slot, so the subscription callbacks never block, whatever executor the
node is spun in, and a slow model drops frames instead of queueing them. No exception leaves a callback, a timer
or the worker: each becomes a rate-limited log line (SegmentCore.problems).

    python -m gara_ros.segment_node --ros-args -p device:=cpu -r image:=/camera/image_raw
"""

from __future__ import annotations

import dataclasses
import functools
import threading

import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import PointStamped
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.qos_overriding_options import QoSOverridingOptions
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header
from std_srvs.srv import SetBool, Trigger

from gara_model.predictor import GaraPredictor
from gara_ros import conversions
from gara_ros.core import OUTPUT_ENCODINGS, Job, SegmentCore, Settings
from gara_ros.frames import LatestSlot
from gara_ros.msg import SegmentPrompt, SegmentResult

try:  # Iron and later
    from rclpy.event_handler import SubscriptionEventCallbacks, UnsupportedEventTypeError
except ImportError:  # Humble
    from rclpy.qos_event import SubscriptionEventCallbacks, UnsupportedEventTypeError

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
    "max_points": (64, "objects with more points are rejected"),
    "diagnostics_period": (1.0, "seconds between /diagnostics messages"),
    # backend (issue 14, docs/deployment.md)
    "backend": ("torch", "torch, or onnxruntime: the model's ONNX export (CUDA/TensorRT providers where installed)"),
    "onnx_dir": ("", "onnxruntime: directory of python -m gara_model.export; empty = exported once into the cache"),
}
IMAGE_QOS = QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT, history=HistoryPolicy.KEEP_LAST)
PROMPT_QOS = QoSProfile(depth=10)  # reliable
OUTPUT_QOS = QoSProfile(depth=2)


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
        compressed = self.p["image_transport"] == "compressed"

        predictor = GaraPredictor.from_files(
            sam_variant=self.p["sam_variant"], checkpoint=self.p["checkpoint"] or None,
            adapter=self.p["adapter"] or None, device=self.p["device"], precision=self.p["precision"],
            image_size=self.p["image_size"] or None, compile=self.p["compile"],
            backend=self.p["backend"], onnx_dir=self.p["onnx_dir"] or None)
        source = self.p["checkpoint"] or "the embedded tiny model (no checkpoint configured)"
        self.get_logger().info(f"{predictor.model_name} on {predictor.device} from {source}")

        self.slot = LatestSlot()
        settings = Settings(**{field.name: self.p[field.name] for field in dataclasses.fields(Settings)})
        self.core = SegmentCore(predictor, conversions.compressed_to_rgb if compressed else conversions.image_to_rgb,
                                settings, self._emit, self.slot.put)

        overrides = QoSOverridingOptions.with_default_policies()
        lost = SubscriptionEventCallbacks(message_lost=self._guard("message_lost", self.on_frames_lost))
        image_type, on_image = CompressedImage if compressed else Image, self._guard("image", self.core.on_frame)
        try:
            self.create_subscription(image_type, "image", on_image, IMAGE_QOS, qos_overriding_options=overrides,
                                     event_callbacks=lost)
        except UnsupportedEventTypeError:  # a middleware that does not count lost messages: stamps only
            self.create_subscription(image_type, "image", on_image, IMAGE_QOS, qos_overriding_options=overrides)
        self.create_subscription(SegmentPrompt, "/gara/prompts", self._guard("prompt", self.core.on_prompt),
                                 PROMPT_QOS, qos_overriding_options=overrides)
        self.create_subscription(PointStamped, "clicks", self._guard("click", self.on_click), PROMPT_QOS)
        self.create_service(Trigger, "~/clear", self._guard("clear", self.on_clear, self._failed_response))
        self.create_service(SetBool, "~/enable", self._guard("enable", self.on_enable, self._failed_response))
        self.pub_result = self.create_publisher(SegmentResult, "~/result", OUTPUT_QOS)
        self.image_publishers = {name: self.create_publisher(Image, f"~/{name}", OUTPUT_QOS)
                                 for name in OUTPUT_ENCODINGS}
        self.pub_diagnostics = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.create_timer(self.p["diagnostics_period"], self._guard("diagnostics", self.publish_diagnostics))

        self._worker = threading.Thread(target=self._work, name="gara_inference", daemon=True)
        self._worker.start()

    # --- callbacks: bookkeeping only, never inference -------------------------------------------------
    def on_click(self, msg: PointStamped) -> None:
        self.core.click(msg.point.x, msg.point.y)

    def on_frames_lost(self, info) -> None:
        self.core.delivery.lost(info.total_count_change)

    def on_clear(self, request, response):
        self.core.clear()
        self.slot.clear()
        response.success, response.message = True, "prompts cleared"
        return response

    def on_enable(self, request, response):
        self.core.enabled = request.data
        if not request.data:
            self.slot.clear()
        response.success, response.message = True, "inference " + ("enabled" if request.data else "paused")
        return response

    def _guard(self, where: str, callback, on_error=None):
        """`callback` that never raises: an exception is reported (kind "internal"); `on_error(*args, error)` then
        gives the return value (a service's response)."""

        @functools.wraps(callback)
        def guarded(*args):
            try:
                return callback(*args)
            except Exception as error:  # noqa: BLE001  no input may end the node
                self.core.problems.report("internal", f"{where} callback failed: {type(error).__name__}: {error}")
                return on_error(*args, error) if on_error else None

        return guarded

    @staticmethod
    def _failed_response(request, response, error: Exception):
        response.success, response.message = False, f"{type(error).__name__}: {error}"
        return response

    def _emit(self, level: str, line: str) -> None:
        # rclpy fixes the severity per calling line: one call site per level.
        if level == "error":
            self.get_logger().error(line)
        else:
            self.get_logger().warning(line)

    # --- worker ---------------------------------------------------------------------------------------
    def _work(self) -> None:
        publish = self._guard("worker", self.publish)
        while not self._stop.is_set():
            job = self.slot.take(timeout=0.1)
            if job is not None:
                try:
                    publish(job)
                finally:
                    self.slot.done()

    def publish(self, job: Job) -> None:
        """Processes a job and publishes the result and every subscribed image output, with the frame's header."""
        wanted = {name for name, publisher in self.image_publishers.items() if publisher.get_subscription_count()}
        output = self.core.process(job, wanted if self.p["overlay"] else wanted - {"overlay"})
        if output is None:
            return
        header = job.frame.msg.header
        messages = [(self.pub_result, conversions.result_msg(
            header, output.object_ids, output.extents, output.scores, output.high_rank_share,
            output.mean_active_components, output.latency_ms))]
        messages += [(self.image_publishers[name], conversions.array_to_image(pixels, OUTPUT_ENCODINGS[name], header))
                     for name, pixels in output.images.items()]
        for publisher, msg in messages:
            publisher.publish(msg)
        output.timer.lap("publish")
        self.core.record(output)

    # --- diagnostics ----------------------------------------------------------------------------------
    def publish_diagnostics(self) -> None:
        health = self.core.diagnostics()
        values = {**health.values, "dropped_frames": str(self.slot.dropped)}
        device = str(self.core.predictor.device)
        status = DiagnosticStatus(
            level=DiagnosticStatus.WARN if health.warn else DiagnosticStatus.OK,
            name=f"{self.get_fully_qualified_name()}: segmentation", hardware_id=device, message=health.message,
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


if __name__ == "__main__":
    raise SystemExit(main())
