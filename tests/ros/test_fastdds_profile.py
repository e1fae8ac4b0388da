"""config/fastdds_shm.xml and gara_ros.transport, behind the launch argument fastdds_profile:=shm."""

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from gara_ros.transport import PROFILE_VARIABLES, PROFILES, profile_env

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


def test_shm_profile_env_points_fast_dds_2_and_3_at_the_profile():
    env = profile_env("shm", CONFIG)
    assert set(env) == {"FASTDDS_DEFAULT_PROFILES_FILE", "FASTRTPS_DEFAULT_PROFILES_FILE"} == set(PROFILE_VARIABLES)
    for path in env.values():
        assert any(e.tag == "segment_size" for e in parse_profile(Path(path)))  # the large-segment profile above


def test_default_profile_sets_nothing_and_unknown_names_are_refused():
    assert profile_env("default", CONFIG) == {}  # an empty variable would be an error for Fast DDS
    with pytest.raises(ValueError, match="'udp'.*default, shm"):
        profile_env("udp", CONFIG)
    assert all(file is None or (CONFIG / file).is_file() for file in PROFILES.values())
