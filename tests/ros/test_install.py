"""gara_ros as it is installed, used from another directory.

- Development (scripts/setup.sh, CMakeLists.txt with GARA_EDITABLE=ON): the messages are built into the venv and
  the modules are used in place from the source tree, so `python -m gara_ros.demo` works anywhere and no installed
  copy can shadow the source.
- Robot (CMakeLists.txt as colcon builds it, GARA_EDITABLE=OFF): everything goes into an install prefix. Built
  here from a copy of the sources in a scratch workspace; after sourcing the prefix's local_setup.bash, the
  installed `lib/gara_ros/segment_node` answers a prompt with the object's mask.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import threading
import time
from pathlib import Path

import pytest
import rclpy
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image
from std_msgs.msg import Header

from gara_ros.conversions import array_to_image, image_to_array
from gara_ros.msg import SegmentPrompt
from gara_ros.segment_node import OUTPUT_QOS, PROMPT_QOS
from tests.ros.helpers import point_object, scene, stamp
from tests.ros.test_node import MIN_IOU, TRUE_MASK, iou

REPO = Path(__file__).resolve().parents[2]
SITE_PACKAGES = Path(sysconfig.get_paths()["purelib"])
# Where the modules and the messages come from, printed by a Python started elsewhere (no torch import: quick).
WHERE = ("import importlib.util, json; print(json.dumps({name: importlib.util.find_spec(name).origin "
         "for name in ('gara_ros.transport', 'gara_ros.msg', 'gara_model')}))")
NOT_SOURCES = shutil.ignore_patterns(".venv*", "build", ".git", "outputs", "runs", "__pycache__", ".pytest_cache")


def test_development_install_uses_the_source_tree_from_any_directory(tmp_path):
    run = subprocess.run([sys.executable, "-c", WHERE], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    origins = json.loads(run.stdout)
    assert origins["gara_ros.transport"] == str(REPO / "gara_ros" / "transport.py")
    assert origins["gara_model"] == str(REPO / "gara_model" / "__init__.py")
    assert origins["gara_ros.msg"] == str(SITE_PACKAGES / "gara_ros" / "msg" / "__init__.py")
    # the installed package holds the generated code only: no module of ours that could go stale
    assert sorted(p.name for p in (SITE_PACKAGES / "gara_ros").glob("*.py")) == ["__init__.py"]


def run_logged(command: list[str], log: Path, **kwargs) -> None:
    with log.open("a") as out:
        if subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, timeout=300, **kwargs).returncode:
            raise RuntimeError(f"{' '.join(command)} failed:\n" + "\n".join(log.read_text().splitlines()[-30:]))


@pytest.fixture(scope="module")
def robot_install(tmp_path_factory) -> Path:
    """The install prefix of a workspace build of gara_ros against this environment's ROS 2, as colcon does it
    (a copy of the sources: CMake refuses to export include paths inside the source tree, where .venv lives)."""
    workspace = tmp_path_factory.mktemp("ros2_ws")
    source = shutil.copytree(REPO, workspace / "src" / "gara", ignore=NOT_SOURCES)
    prefix, log = workspace / "install", workspace / "build.log"
    env = dict(os.environ, AMENT_PREFIX_PATH=sys.prefix)  # where rosidl finds the typesupports
    run_logged(["cmake", "-S", str(source), "-B", str(workspace / "build"), "-Wno-dev",
                f"-DCMAKE_INSTALL_PREFIX={prefix}", f"-DCMAKE_PREFIX_PATH={sys.prefix}",
                f"-DPython3_EXECUTABLE={sys.executable}", "-DBUILD_TESTING=OFF"], log, env=env)
    run_logged(["cmake", "--build", str(workspace / "build"), "-j2"], log, env=env)
    run_logged(["cmake", "--install", str(workspace / "build")], log, env=env)
    return prefix


def sourced(prefix: Path, command: str) -> list[str]:
    """`command` in bash after sourcing the prefix's local_setup.bash, as a robot user's shell does."""
    return ["bash", "-c", f'source "{prefix}/share/gara_ros/local_setup.bash" && {command}']


def test_installed_node_answers_a_prompt_with_the_mask_from_another_directory(robot_install, tmp_path, ros):
    env = {k: v for k, v in os.environ.items() if k not in ("AMENT_PREFIX_PATH", "PYTHONPATH")}
    run = subprocess.run(sourced(robot_install, f'exec "{sys.executable}" -c "{WHERE}"'), capture_output=True,
                         text=True, timeout=60, cwd=tmp_path, env=env)
    assert run.returncode == 0, run.stderr
    installed = robot_install / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"
    assert {Path(origin).relative_to(installed).parts[0] for origin in json.loads(run.stdout).values()} == {
        "gara_ros", "gara_model"}  # nothing from the source tree or the venv's development install

    node = subprocess.Popen(
        sourced(robot_install, f'exec "{robot_install}/lib/gara_ros/segment_node" --ros-args -r __ns:=/installed '
                               "-r /gara/prompts:=/installed/prompts -p device:=cpu"),
        cwd=tmp_path, env=env, stderr=subprocess.PIPE, text=True)
    log: list[str] = []
    threading.Thread(target=lambda: log.extend(node.stderr), daemon=True).start()
    probe = rclpy.create_node("gara_install_probe")
    masks = []
    probe.create_subscription(Image, "/installed/segment_node/mask", masks.append, OUTPUT_QOS)
    images = probe.create_publisher(Image, "/installed/image", qos_profile_sensor_data)
    prompts = probe.create_publisher(SegmentPrompt, "/installed/prompts", PROMPT_QOS)
    deadline = time.monotonic() + 60  # the node's start-up: torch import, model load
    try:
        while not masks and node.poll() is None and time.monotonic() < deadline:
            images.publish(array_to_image(scene(), "rgb8", Header(stamp=stamp(7), frame_id="camera")))
            prompts.publish(SegmentPrompt(header=Header(stamp=stamp(7)), objects=[point_object("cup", 45, 30)]))
            rclpy.spin_once(probe, timeout_sec=0.5)
    finally:
        probe.destroy_node()
        if node.poll() is None:
            node.send_signal(signal.SIGINT)
        code = node.wait(30)
    assert masks, "".join(log)
    assert (masks[0].header.stamp.sec, masks[0].width, masks[0].height) == (7, 96, 64)
    assert iou(image_to_array(masks[0])[..., 0] > 0, TRUE_MASK) >= MIN_IOU
    assert code == 0, "".join(log)  # Ctrl-C ends it cleanly
