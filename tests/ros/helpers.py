"""Message factories and a node harness for tests/ros (rclpy settings come from conftest.py)."""

import threading
import time

import numpy as np
import rclpy
from builtin_interfaces.msg import Time
from geometry_msgs.msg import Point, PointStamped
from rclpy.executors import SingleThreadedExecutor
from rclpy.parameter import Parameter
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header
from std_srvs.srv import SetBool, Trigger

from gara_ros.conversions import array_to_image
from gara_ros.msg import ObjectPrompt, SegmentPrompt, SegmentResult
from gara_ros.segment_node import OUTPUT_QOS, SegmentNode


def wait_for(predicate, timeout=5.0, period=0.01):
    """True once predicate() is true, False after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(period)
    return predicate()


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


class Harness:
    """A SegmentNode and a client node spun together in a background thread, with every output recorded."""

    def __init__(self, **params):
        self.node = SegmentNode(parameter_overrides=[Parameter(k, value=v) for k, v in params.items()])
        self.client = rclpy.create_node("gara_test_client")
        image_type = CompressedImage if params.get("image_transport") == "compressed" else Image
        self.images = self.client.create_publisher(image_type, "image", qos_profile_sensor_data)
        self.prompts = self.client.create_publisher(SegmentPrompt, "/gara/prompts", 10)
        self.clicks = self.client.create_publisher(PointStamped, "clicks", 10)
        self.clear = self.client.create_client(Trigger, "/segment_node/clear")
        self.enable = self.client.create_client(SetBool, "/segment_node/enable")
        self.received = {name: [] for name in ("mask", "labels", "overlay", "result")}
        for name in ("mask", "labels", "overlay"):
            self.client.create_subscription(Image, f"/segment_node/{name}", self.received[name].append, OUTPUT_QOS)
        self.client.create_subscription(SegmentResult, "/segment_node/result", self.received["result"].append, OUTPUT_QOS)
        self.executor = SingleThreadedExecutor()
        self.executor.add_node(self.node)
        self.executor.add_node(self.client)
        self.thread = threading.Thread(target=self.executor.spin, daemon=True)
        self.thread.start()
        publishers = (self.images, self.prompts, self.clicks)
        assert wait_for(lambda: all(p.get_subscription_count() for p in publishers)
                        and self.node.pub_result.get_subscription_count()
                        and self.node.pub_overlay.get_subscription_count())

    def send_image(self, rgb, t, encoding="rgb8", msg=None):
        """Publish a frame stamped `t` seconds and wait until the node has buffered it."""
        msg = msg or array_to_image(rgb, encoding, Header(stamp=stamp(t), frame_id="camera"))
        before = self.node.stats["received"]
        self.images.publish(msg)
        assert wait_for(lambda: self.node.stats["received"] > before), "node did not receive the image"
        return msg

    def results_after(self, count, timeout=5.0):
        """Wait for more than `count` results; the list of all results."""
        wait_for(lambda: len(self.received["result"]) > count, timeout)
        return self.received["result"]

    def call(self, client, request):
        assert client.wait_for_service(timeout_sec=5.0)
        future = client.call_async(request)
        assert wait_for(future.done)
        return future.result()

    def close(self):
        self.executor.shutdown()
        self.thread.join()
        self.node.destroy_node()
        self.client.destroy_node()
