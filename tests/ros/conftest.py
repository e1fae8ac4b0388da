"""Real rclpy, kept on this machine: LOCALHOST discovery and a domain id of our own, set before rclpy loads.

gara_ros.msg comes from the venv (scripts/setup_ros.sh), the modules from the source tree (docs/ros.md, "Install").
"""

import os

os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
os.environ["ROS_DOMAIN_ID"] = os.environ.get("GARA_TEST_DOMAIN_ID", str(1 + os.getpid() % 100))

import pytest  # noqa: E402
import rclpy  # noqa: E402

from tests.ros.harness import Harness  # noqa: E402


@pytest.fixture(scope="session")
def ros():
    rclpy.init()
    yield
    rclpy.shutdown()


@pytest.fixture
def harness(ros):
    """Factory: harness(**parameters) -> Harness, closed after the test."""
    made = []

    def make(**params):
        made.append(Harness(**params))
        return made[-1]

    yield make
    for h in made:
        h.close()
