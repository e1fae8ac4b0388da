"""config/fastdds_shm.xml and gara_ros.transport, behind the launch argument fastdds_profile:=shm."""

import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from gara_ros.transport import PROFILE_VARIABLES, PROFILES, profile_env, ros_distro

CONFIG = Path(__file__).parents[2] / "config"


def parse_profile(path: Path) -> list[ET.Element]:
    """Every element of a Fast DDS profiles file, XML namespace dropped from the tags."""
    elements = list(ET.parse(path).getroot().iter())
    for element in elements:
        element.tag = element.tag.rsplit("}", 1)[-1]
    return elements


def test_shm_profile_is_the_default_participant_with_a_large_segment_and_udp():
    elements = parse_profile(CONFIG / "fastdds_shm.xml")
    descriptors = {d.findtext("transport_id"): d for d in elements if d.tag == "transport_descriptor"}
    assert {d.findtext("type") for d in descriptors.values()} == {"SHM", "UDPv4"}
    shm = next(d for d in descriptors.values() if d.findtext("type") == "SHM")
    # a 1920x1080 rgb8 frame (6.2 MB) goes whole through one segment, with room for a few in flight
    frame_bytes = 1920 * 1080 * 3
    assert int(shm.findtext("maxMessageSize")) >= frame_bytes and int(shm.findtext("segment_size")) >= 4 * frame_bytes
    assert int(shm.findtext("segment_size")) == 32 * 2**20 and int(shm.findtext("maxMessageSize")) == 16 * 2**20
    (participant,) = [e for e in elements if e.tag == "participant"]
    assert participant.get("is_default_profile") == "true"
    assert [t.text for t in participant.find("rtps/userTransports")] == list(descriptors)
    assert participant.findtext("rtps/useBuiltinTransports") == "false"


@pytest.mark.parametrize("distro, variable", [("humble", "FASTRTPS_DEFAULT_PROFILES_FILE"),
                                              ("jazzy", "FASTRTPS_DEFAULT_PROFILES_FILE"),
                                              ("kilted", "FASTDDS_DEFAULT_PROFILES_FILE"),
                                              ("rolling", "FASTDDS_DEFAULT_PROFILES_FILE")])
def test_shm_profile_env_sets_the_one_variable_the_distros_fast_dds_reads(distro, variable):
    env = profile_env("shm", CONFIG, distro)
    assert list(env) == [variable] and variable in PROFILE_VARIABLES
    assert any(e.tag == "segment_size" for e in parse_profile(Path(env[variable])))  # the large-segment profile


# Maps of this process's Fast DDS shared-memory segments, after rclpy has made a node: the largest, in MiB.
LARGEST_SEGMENT = """
import rclpy
rclpy.init()
node = rclpy.create_node("gara_profile_probe")
sizes = [int(end, 16) - int(start, 16) for start, end, path in (
    (*line.split()[0].split("-"), line.split()[-1]) for line in open("/proc/self/maps")) if "/dev/shm/fast" in path]
print(max(sizes, default=0) // 2**20)
node.destroy_node()
rclpy.shutdown()
"""


def test_this_environments_fast_dds_loads_the_profile_from_profile_env_without_a_warning():
    """The distro's variable is the right one: Jazzy's Fast DDS ignores FASTDDS_..., Kilted's warns on FASTRTPS_...
    (both checked by hand). The distro comes from $ROS_DISTRO, or in the venv of scripts/setup.sh from rclpy."""
    env = {k: v for k, v in os.environ.items() if k not in PROFILE_VARIABLES}
    run = subprocess.run([sys.executable, "-c", LARGEST_SEGMENT], capture_output=True, text=True, timeout=60,
                         env=env | profile_env("shm", CONFIG))
    assert run.returncode == 0, run.stderr
    # the profile's 32 MB segment, with its bookkeeping (the default segment is 0.5 MB)
    assert 32 <= int(run.stdout) < 64 and "deprecated" not in run.stderr, (ros_distro(), run.stderr)


def test_default_profile_sets_nothing_and_unknown_names_are_refused():
    assert profile_env("default", CONFIG) == {}  # an empty variable would be an error for Fast DDS
    with pytest.raises(ValueError, match="'udp'.*default, shm"):
        profile_env("udp", CONFIG)
    assert all(file is None or (CONFIG / file).is_file() for file in PROFILES.values())
