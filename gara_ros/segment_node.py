"""segment_node: camera images + prompts in, masks out. The rclpy front end over gara_ros.core.SegmentCore.

This file holds what is ROS: the lifecycle, parameters, QoS, subscriptions, services, publishing and diagnostics.
Inference runs in a worker thread fed through a one-item slot, so the subscription callbacks never block, whatever
executor the node is spun in, and a slow model drops frames instead of queueing them. No exception leaves a
callback, a timer or the worker: each becomes a rate-limited log line (SegmentCore.problems).

    python -m gara_ros.segment_node --ros-args -p device:=cpu -r image:=/camera/image_raw

comes up active (parameter `autostart`, default true); with `-p autostart:=false` it waits, unconfigured, for a
lifecycle manager (`ros2 lifecycle set /segment_node configure`, then `activate`).
"""

from __future__ import annotations

import dataclasses
import functools
import threading

import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import PointStamped
from rcl_interfaces.msg import ParameterDescriptor, SetParametersResult
from rclpy.lifecycle import LifecycleNode, LifecyclePublisher, LifecycleState, TransitionCallbackReturn
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.publisher import Publisher
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.qos_overriding_options import QoSOverridingOptions
from rclpy.service import Service
from rclpy.subscription import Subscription
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from std_msgs.msg import Header
from std_srvs.srv import SetBool, Trigger

from gara_model.device import release_memory
from gara_ros import conversions
from gara_ros.core import OUTPUT_ENCODINGS, OUTPUT_TYPES, OUTPUTS_3D, Job, SegmentCore, Settings, load_predictor
from gara_ros.frames import LatestSlot
from gara_ros.msg import SegmentPrompt

try:  # Iron and later
    from rclpy.event_handler import SubscriptionEventCallbacks, UnsupportedEventTypeError
except ImportError:  # Humble
    from rclpy.qos_event import SubscriptionEventCallbacks, UnsupportedEventTypeError

# name -> (default, description); defaults match config/gara.yaml.
PARAMETERS = {
    "sam_variant": ("vit_b", "SAM image encoder: vit_b, vit_l, vit_h (ignored without a checkpoint)"),
    "checkpoint": ("", "SAM checkpoint file (.pth or .safetensors); empty = the embedded tiny model (with its GaRA "
                       "adapter unless 'adapter' is set)"),
    "adapter": ("", "GaRA adapter file; empty = plain SAM with a checkpoint, the embedded GaRA adapter without; "
                    "none = plain SAM"),
    "device": ("auto", "auto, cpu, cuda or cuda:N"),
    "precision": ("auto", "auto, fp32, fp16 or bf16"),
    "image_size": (0, "image encoder input size in pixels, a multiple of the patch size (issue 6, docs/basam.md); "
                      "0 = the model's native size"),
    "compile": (False, "torch.compile the encoder and decoder: slower start-up, faster frames on CUDA (docs/benchmarks.md)"),
    "multimask": (False, "decode 3 masks per object and keep the best-scoring one"),
    "mask_threshold": (0.0, "logit threshold for the binary masks"),
    "persist": (False, "apply the last prompts to every new frame until ~/clear"),
    "track": (False, "follow each prompted object from its own previous mask on every new frame until it is removed "
                     "or ~/clear (persist is then not used; docs/ros.md, 'Track mode')"),
    "track_min_score": (0.3, "track: a followed object whose predicted IoU falls below this is lost"),
    "track_max_area_change": (3.0, "track: a followed object whose mask area grows or shrinks more than this factor "
                                   "from one frame to the next is lost"),
    "stamp_tolerance": (0.05, "seconds: a stamped prompt uses the buffered frame nearest in time within this"),
    "buffer_size": (30, "recent frames kept for stamped prompts"),
    "overlay": (True, "draw and publish ~/overlay"),
    "image_transport": ("raw", "raw (sensor_msgs/Image) or compressed (sensor_msgs/CompressedImage) on 'image'"),
    "max_objects": (16, "prompts with more objects are rejected"),
    "max_points": (64, "objects with more points are rejected"),
    "diagnostics_period": (1.0, "seconds between /diagnostics messages"),
    "use_depth": (False, "subscribe to depth_image (aligned to image; 16UC1 mm or 32FC1 m) and depth_info; publish "
                         "~/points and ~/markers and each object's 3D in ~/result"),
    "max_depth": (10.0, "metres: depth beyond this is invalid"),
    "depth_band": (0.5, "metres: an object's 3D keeps the points within this depth of its median (0 = all)"),
    "autostart": (True, "configure and activate at start-up; false: stay unconfigured for a lifecycle manager"),
    # backend (issue 14, docs/deployment.md)
    "backend": ("torch", "torch, or onnxruntime: the model's ONNX export (CUDA/TensorRT providers where installed)"),
    "onnx_dir": ("", "onnxruntime: directory of python -m gara_model.export; empty = exported once into the cache"),
}
# Parameters that `ros2 param set` applies while the node runs. The others are read by configure.
RUNTIME_PARAMETERS = frozenset({"persist", "track", "track_min_score", "track_max_area_change", "stamp_tolerance",
                                "max_objects", "max_points", "multimask", "mask_threshold", "overlay", "max_depth",
                                "depth_band"})
CONFIGURE_TIME = "read by configure: settable only while the node is unconfigured"
SETTINGS = frozenset(field.name for field in dataclasses.fields(Settings))  # the parameters the core uses
DECODERS = {"raw": conversions.image_to_rgb, "compressed": conversions.compressed_to_rgb}  # by image_transport
IMAGE_QOS = QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT, history=HistoryPolicy.KEEP_LAST)
PROMPT_QOS = QoSProfile(depth=10)  # reliable
OUTPUT_QOS = QoSProfile(depth=2)


class SegmentNode(LifecycleNode):
    """Promptable segmentation of the newest camera frame with GaRA-SAM: a managed (lifecycle) node.

    unconfigured --configure--> inactive: the model is loaded, outputs, services and /diagnostics exist.
    inactive --activate--> active: the inputs are subscribed and the inference worker runs.
    active --deactivate--> inactive: inputs unsubscribed, the frame in progress finished, queued work dropped.
    inactive --cleanup--> unconfigured: the model and its device memory are freed.
    """

    def __init__(self, **kwargs):
        super().__init__("segment_node", **kwargs)
        self.core: SegmentCore | None = None  # while configured
        self.slot: LatestSlot | None = None  # jobs from the core to the worker, while configured
        self.output_publishers, self.pub_diagnostics = {}, None  # while configured; outputs by OUTPUT_TYPES name
        self._worker: threading.Thread | None = None  # while active
        self._stop = threading.Event()
        self._configured: list = []  # entities made by configure, destroyed by cleanup
        self._subscribed: list = []  # entities made by activate, destroyed by deactivate
        for name, (default, description) in PARAMETERS.items():
            self.declare_parameter(name, default, ParameterDescriptor(
                description=description, additional_constraints="" if name in RUNTIME_PARAMETERS else CONFIGURE_TIME))
        self.p = {name: self.get_parameter(name).value for name in PARAMETERS}  # the values in force
        self.add_on_set_parameters_callback(self.on_set_parameters)
        if self.p["autostart"] and self.trigger_configure() == TransitionCallbackReturn.SUCCESS:
            self.trigger_activate()

    @property
    def lifecycle_state(self) -> str:
        """"unconfigured", "inactive" or "active", from what the node holds (rclpy before Jazzy has no getter)."""
        return "active" if self._worker else "inactive" if self.core else "unconfigured"

    # --- lifecycle transitions ------------------------------------------------------------------------
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Reads the parameters and loads the model; anything wrong (a file, the device, a setting) is one log line
        and the node stays unconfigured."""
        self.p = {name: self.get_parameter(name).value for name in PARAMETERS}
        self.slot = LatestSlot()
        try:
            self.core = self._load()
        except Exception as error:  # noqa: BLE001  whatever the files hold: one line, stay unconfigured
            self.slot = None
            text = str(error) if isinstance(error, (OSError, ValueError)) else f"{type(error).__name__}: {error}"
            self.get_logger().error("configure failed: " + " ".join(text.split()))
            return TransitionCallbackReturn.FAILURE
        self.output_publishers = {
            name: self.create_lifecycle_publisher(conversions.ros_message_class(msgtype), f"~/{name}", OUTPUT_QOS)
            for name, msgtype in OUTPUT_TYPES.items() if self.p["use_depth"] or name not in OUTPUTS_3D}
        self.pub_diagnostics = self.create_publisher(DiagnosticArray, "/diagnostics", 10)  # inactive too
        self._configured = [
            *self.output_publishers.values(), self.pub_diagnostics,
            self.create_service(Trigger, "~/clear", self._guard("clear", self.on_clear, self._failed_response)),
            self.create_service(SetBool, "~/enable", self._guard("enable", self.on_enable, self._failed_response)),
            self.create_timer(self.p["diagnostics_period"], self._guard("diagnostics", self.publish_diagnostics))]
        return super().on_configure(state)

    def _load(self) -> SegmentCore:
        if self.p["image_transport"] not in DECODERS:
            raise ValueError(f"image_transport must be one of {', '.join(DECODERS)}, got {self.p['image_transport']!r}")
        settings = Settings.from_parameters(self.p)
        predictor = load_predictor(self.p)
        source = self.p["checkpoint"] or "the embedded tiny model (no checkpoint configured)"
        self.get_logger().info(f"{predictor.model_name} on {predictor.device} from {source}")
        return SegmentCore(predictor, DECODERS[self.p["image_transport"]], settings, self._emit, self.slot.put)

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Enables the outputs, subscribes to the inputs and starts the inference worker."""
        result = super().on_activate(state)  # enables the lifecycle publishers
        image_type = CompressedImage if self.p["image_transport"] == "compressed" else Image
        overrides = QoSOverridingOptions.with_default_policies()
        lost = SubscriptionEventCallbacks(message_lost=self._guard("message_lost", self.on_frames_lost))
        on_image = self._guard("image", lambda msg: self.core.on_frame(msg))
        try:
            images = self.create_subscription(image_type, "image", on_image, IMAGE_QOS,
                                              qos_overriding_options=overrides, event_callbacks=lost)
        except UnsupportedEventTypeError:  # a middleware that does not count lost messages: stamps only
            images = self.create_subscription(image_type, "image", on_image, IMAGE_QOS,
                                              qos_overriding_options=overrides)
        self._subscribed = [
            images,
            self.create_subscription(SegmentPrompt, "/gara/prompts",
                                     self._guard("prompt", lambda msg: self.core.on_prompt(msg)), PROMPT_QOS,
                                     qos_overriding_options=overrides),
            self.create_subscription(PointStamped, "clicks", self._guard("click", self.on_click), PROMPT_QOS)]
        if self.p["use_depth"]:  # 3D from an aligned depth image
            self._subscribed += [
                self.create_subscription(Image, "depth_image", self._guard("depth", lambda msg: self.core.on_depth(msg)),
                                         IMAGE_QOS, qos_overriding_options=overrides),
                self.create_subscription(CameraInfo, "depth_info",
                                         self._guard("depth_info", lambda msg: self.core.on_camera_info(msg)),
                                         IMAGE_QOS, qos_overriding_options=overrides)]
        self._stop.clear()
        self._worker = threading.Thread(target=self._work, name="gara_inference", daemon=True)
        self._worker.start()
        return result

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._halt()
        return super().on_deactivate(state)  # disables the lifecycle publishers

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        return super().on_cleanup(state)

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._halt()
        self._release()
        return super().on_shutdown(state)

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        """A transition raised: back to unconfigured with everything freed."""
        self._halt()
        self._release()
        return super().on_error(state)

    def _halt(self) -> None:
        """Stops processing: no new job is taken, the inputs are unsubscribed, the job in progress finishes (and is
        published), queued work is dropped. Does nothing when not active."""
        self._stop.set()  # first: once the inputs are gone (visible to other nodes), no new job starts
        self._destroy(self._subscribed)
        self._subscribed = []
        if self._worker is not None:
            self._worker.join()
            self._worker = None
        if self.slot is not None:
            self.slot.clear()

    def _release(self) -> None:
        """Destroys what configure made and frees the model and its device memory. Does nothing when unconfigured."""
        self._destroy(self._configured)
        self._configured, self.output_publishers, self.pub_diagnostics = [], {}, None
        if self.core is not None:
            device = self.core.predictor.device
            self.core = self.slot = None  # the only references to the model
            release_memory(device)

    def _destroy(self, entities: list) -> None:
        for entity in entities:
            if isinstance(entity, LifecyclePublisher):
                self.destroy_lifecycle_publisher(entity)
            elif isinstance(entity, Publisher):
                self.destroy_publisher(entity)
            elif isinstance(entity, Subscription):
                self.destroy_subscription(entity)
            elif isinstance(entity, Service):
                self.destroy_service(entity)
            else:
                self.destroy_timer(entity)

    # --- parameters -----------------------------------------------------------------------------------
    def on_set_parameters(self, parameters: list[Parameter]) -> SetParametersResult:
        """`ros2 param set`: run-time parameters apply from the next frame or prompt on; the others only while
        unconfigured (configure reads them). An invalid value is refused with the reason."""
        changes = {p.name: p.value for p in parameters if p.name in PARAMETERS}
        if self.core is None:
            return SetParametersResult(successful=True)
        fixed = sorted(set(changes) - RUNTIME_PARAMETERS)
        if fixed:
            return SetParametersResult(successful=False, reason=(
                f"{', '.join(fixed)}: {CONFIGURE_TIME}; this node is {self.lifecycle_state}, so deactivate and clean "
                f"it up first (run-time parameters: {', '.join(sorted(RUNTIME_PARAMETERS))})"))
        try:
            settings = dataclasses.replace(self.core.settings, **{k: v for k, v in changes.items() if k in SETTINGS})
        except ValueError as error:
            return SetParametersResult(successful=False, reason=str(error))
        self.core.update(settings)
        self.p.update(changes)
        return SetParametersResult(successful=True)

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
                core = self.core
                if core is not None:  # None: cleaned up while this ran (a multi-threaded executor); nothing to serve
                    core.problems.report("internal", f"{where} callback failed: {type(error).__name__}: {error}")
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
        """Processes a job and publishes the result and every subscribed output, with the frame's header (the 3D
        ones with the depth image's frame_id)."""
        subscribed = {name for name, publisher in self.output_publishers.items()
                      if publisher.get_subscription_count()}
        images = subscribed.intersection(OUTPUT_ENCODINGS)
        output = self.core.process(job, images if self.p["overlay"] else images - {"overlay"})
        if output is None:
            return
        for name, msg in output.messages(wanted=subscribed).items():
            self.output_publishers[name].publish(msg)
        output.timer.lap("publish")
        self.core.record(output)

    # --- diagnostics ----------------------------------------------------------------------------------
    def publish_diagnostics(self) -> None:
        health = self.core.diagnostics()
        values = {**health.values, "dropped_frames": str(self.slot.dropped)}
        device = str(self.core.predictor.device)
        status = DiagnosticStatus(
            level=DiagnosticStatus.WARN if health.warn else DiagnosticStatus.OK,
            name=f"{self.get_fully_qualified_name()}: segmentation", hardware_id=device,
            message=health.message if self._worker else "inactive",
            values=[KeyValue(key=k, value=v) for k, v in values.items()])
        header = Header(stamp=self.get_clock().now().to_msg())
        self.pub_diagnostics.publish(DiagnosticArray(header=header, status=[status]))

    def destroy_node(self):
        self._halt()  # the core stays readable (bench/ros_common.py reads its statistics afterwards)
        return super().destroy_node()


def main(args=None) -> int:
    rclpy.init(args=args)
    node = SegmentNode()
    if node.p["autostart"] and node.lifecycle_state != "active":  # configure has logged why
        node.destroy_node()
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
