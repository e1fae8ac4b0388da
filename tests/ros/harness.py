"""A SegmentNode in the test process with a client node, spun in a background thread.

conftest.py has set ROS_AUTOMATIC_DISCOVERY_RANGE / ROS_DOMAIN_ID and the `ros` fixture has called rclpy.init().
"""

from __future__ import annotations

import threading
import time

import rclpy
from geometry_msgs.msg import PointStamped
from lifecycle_msgs.msg import Transition
from lifecycle_msgs.srv import ChangeState, GetState
from rcl_interfaces.msg import SetParametersResult
from rcl_interfaces.srv import SetParameters
from rclpy.executors import SingleThreadedExecutor
from rclpy.parameter import Parameter
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2
from std_msgs.msg import Header
from std_srvs.srv import SetBool, Trigger
from visualization_msgs.msg import MarkerArray

from gara_ros.conversions import array_to_image
from gara_ros.msg import SegmentPrompt, SegmentResult
from gara_ros.segment_node import OUTPUT_QOS, PROMPT_QOS, SegmentNode
from tests.ros.helpers import stamp

OUTPUTS = {"mask": Image, "labels": Image, "overlay": Image, "result": SegmentResult}
OUTPUTS_3D = {"points": PointCloud2, "markers": MarkerArray}  # with use_depth


def wait_for(predicate, timeout: float = 5.0, period: float = 0.01) -> bool:
    """True once predicate() is true, False after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(period)
    return bool(predicate())


class Harness:
    """A SegmentNode (parameters from `params`) and a client recording every output in `received`; the client also
    drives the node's lifecycle and parameters through their services, as `ros2 lifecycle` and `ros2 param` do."""

    def __init__(self, **params):
        self.node = SegmentNode(parameter_overrides=[Parameter(k, value=v) for k, v in params.items()])
        self.client = rclpy.create_node("gara_client")
        compressed = params.get("image_transport") == "compressed"
        self.images = self.client.create_publisher(CompressedImage if compressed else Image, "image",
                                                   qos_profile_sensor_data)
        self.prompts = self.client.create_publisher(SegmentPrompt, "/gara/prompts", PROMPT_QOS)
        self.clicks = self.client.create_publisher(PointStamped, "clicks", PROMPT_QOS)
        self.name = name = self.node.get_fully_qualified_name()
        self.clear = self.client.create_client(Trigger, f"{name}/clear")
        self.enable = self.client.create_client(SetBool, f"{name}/enable")
        self.change_state = self.client.create_client(ChangeState, f"{name}/change_state")
        self.get_state = self.client.create_client(GetState, f"{name}/get_state")
        self.set_parameters = self.client.create_client(SetParameters, f"{name}/set_parameters")
        outputs = OUTPUTS | (OUTPUTS_3D if params.get("use_depth") else {})
        self.received = {output: [] for output in outputs}
        for output, msg_type in outputs.items():
            self.client.create_subscription(msg_type, f"{name}/{output}", self.received[output].append, OUTPUT_QOS)
        self.inputs = [self.images, self.prompts, self.clicks]
        if params.get("use_depth"):
            self.depth = self.client.create_publisher(Image, "depth_image", qos_profile_sensor_data)
            self.depth_info = self.client.create_publisher(CameraInfo, "depth_info", qos_profile_sensor_data)
            self.inputs += [self.depth, self.depth_info]
        self.executor = SingleThreadedExecutor()
        self.executor.add_node(self.node)
        self.executor.add_node(self.client)
        self.thread = threading.Thread(target=self.executor.spin, daemon=True)
        self.thread.start()
        if self.node.lifecycle_state == "active":
            try:
                self.wait_connected()
            except TimeoutError:
                self.close()
                raise

    def wait_connected(self, timeout: float = 5.0) -> None:
        """Wait until the active node and the client have discovered each other's publishers and subscriptions."""
        if not wait_for(lambda: all(p.get_subscription_count() for p in self.inputs)
                        and all(p.get_subscription_count() for p in self.node_publishers()), timeout):
            raise TimeoutError(f"segment_node and the client did not discover each other within {timeout} s")

    def node_publishers(self) -> list:
        """The node's outputs this client subscribes to (they exist while the node is configured)."""
        return list(self.node.output_publishers.values())

    def transition(self, label: str) -> bool:
        """A lifecycle transition by its label (configure, activate, deactivate, cleanup, shutdown): success."""
        return self.call(self.change_state, ChangeState.Request(transition=Transition(label=label))).success

    def state(self) -> str:
        """The node's lifecycle state as its get_state service tells it."""
        return self.call(self.get_state, GetState.Request()).current_state.label

    def set_params(self, **values) -> list[SetParametersResult]:
        """Set parameters as `ros2 param set` does; one result per parameter."""
        request = SetParameters.Request(
            parameters=[Parameter(k, value=v).to_parameter_msg() for k, v in values.items()])
        return list(self.call(self.set_parameters, request).results)

    def stats(self):
        return self.node.core.stats()

    def send_image(self, rgb, t, encoding="rgb8", msg=None, timeout: float = 5.0):
        """Publish `rgb` (or `msg`) stamped `t` seconds and wait until the node has buffered it."""
        msg = msg or array_to_image(rgb, encoding, Header(stamp=stamp(t), frame_id="camera"))
        before = self.stats().received
        self.images.publish(msg)
        if not wait_for(lambda: self.stats().received > before, timeout):
            raise TimeoutError(f"segment_node did not receive the image within {timeout} s")
        return msg

    def send_depth(self, depth: Image, info: CameraInfo, timeout: float = 5.0) -> None:
        """Publish a depth image and its camera info (use_depth) and wait until the node has buffered both."""
        stamp_ns = depth.header.stamp.sec * 10**9 + depth.header.stamp.nanosec
        core = self.node.core
        self.depth.publish(depth)
        self.depth_info.publish(info)
        if not wait_for(lambda: core.depth_frames.find(stamp_ns, 0) and core.camera_infos.find(stamp_ns, 0), timeout):
            raise TimeoutError(f"segment_node did not receive the depth image and camera info within {timeout} s")

    def send_prompt(self, msg, timeout: float = 5.0) -> None:
        """Publish a SegmentPrompt and wait until the node has handled it (and submitted its job, if any)."""
        before = self.stats().prompts
        self.prompts.publish(msg)
        if not wait_for(lambda: self.stats().prompts > before, timeout):
            raise TimeoutError(f"segment_node did not handle the prompt within {timeout} s")

    def settle(self, timeout: float = 10.0) -> None:
        """Wait until the node's worker has no job left (every submitted job published or skipped)."""
        if not wait_for(self.node.slot.idle, timeout):
            raise TimeoutError(f"segment_node's worker still busy after {timeout} s")

    def results_after(self, count: int, timeout: float = 5.0) -> list[SegmentResult]:
        """All results, after waiting up to `timeout` s for more than `count` of them."""
        wait_for(lambda: len(self.received["result"]) > count, timeout)
        return self.received["result"]

    def call(self, client, request, timeout: float = 5.0):
        """Call one of the node's services (self.clear, self.enable, ...) and return the response."""
        if not client.wait_for_service(timeout_sec=timeout):
            raise TimeoutError(f"service {client.srv_name} not available")
        future = client.call_async(request)
        if not wait_for(future.done, timeout):
            raise TimeoutError(f"service {client.srv_name} did not answer within {timeout} s")
        return future.result()

    def close(self) -> None:
        self.executor.shutdown()
        self.thread.join()
        self.node.destroy_node()
        self.client.destroy_node()
