"""ros2 launch gara_ros segment.launch.py brings up a node that answers with masks.

Needs launch_pytest and gara_ros installed in an ament prefix (colcon build; source install/setup.bash).
"""

import time
from pathlib import Path

import pytest

launch_pytest = pytest.importorskip("launch_pytest")

import rclpy  # noqa: E402
from launch import LaunchDescription  # noqa: E402
from launch.actions import IncludeLaunchDescription  # noqa: E402
from launch.launch_description_sources import PythonLaunchDescriptionSource  # noqa: E402
from rclpy.qos import qos_profile_sensor_data  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402

from gara_ros.conversions import array_to_image  # noqa: E402
from gara_ros.msg import SegmentPrompt  # noqa: E402
from gara_ros.segment_node import OUTPUT_QOS  # noqa: E402
from tests.ros.helpers import point_object, scene, stamp  # noqa: E402

LAUNCH_FILE = Path(__file__).parents[2] / "launch" / "segment.launch.py"


@launch_pytest.fixture
def launch_description():
    return LaunchDescription([
        IncludeLaunchDescription(PythonLaunchDescriptionSource(str(LAUNCH_FILE)), launch_arguments={
            "image": "/gara_launch_test/camera", "namespace": "gara_launch_test", "device": "cpu"}.items()),
        launch_pytest.actions.ReadyToTest(),
    ])


@pytest.mark.launch(fixture=launch_description)
def test_launched_node_publishes_masks(ros):
    probe = rclpy.create_node("gara_launch_probe")
    masks = []
    probe.create_subscription(Image, "/gara_launch_test/segment_node/mask", masks.append, OUTPUT_QOS)
    images = probe.create_publisher(Image, "/gara_launch_test/camera", qos_profile_sensor_data)
    prompts = probe.create_publisher(SegmentPrompt, "/gara/prompts", 10)
    deadline = time.monotonic() + 60.0  # includes the node's start-up (torch import, model load)
    try:
        while not masks and time.monotonic() < deadline:
            msg = array_to_image(scene(), "rgb8")
            msg.header.stamp = stamp(1)
            images.publish(msg)
            prompts.publish(SegmentPrompt(objects=[point_object("cup", 45, 30)]))
            rclpy.spin_once(probe, timeout_sec=0.5)
    finally:
        probe.destroy_node()
    assert masks and (masks[0].width, masks[0].height, masks[0].header.stamp.sec) == (96, 64, 1)
