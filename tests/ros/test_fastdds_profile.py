"""config/fastdds_shm.xml, the large shared-memory profile behind the launch argument fastdds_profile:=shm."""

import xml.etree.ElementTree as ET
from pathlib import Path

REPO = Path(__file__).parents[2]


def test_shm_profile_is_the_default_participant_with_a_large_segment_and_udp():
    elements = list(ET.parse(REPO / "config" / "fastdds_shm.xml").getroot().iter())
    for element in elements:
        element.tag = element.tag.rsplit("}", 1)[-1]  # drop the XML namespace
    descriptors = {d.findtext("transport_id"): d for d in elements if d.tag == "transport_descriptor"}
    assert {d.findtext("type") for d in descriptors.values()} == {"SHM", "UDPv4"}
    shm = next(d for d in descriptors.values() if d.findtext("type") == "SHM")
    assert int(shm.findtext("segment_size")) == 32 * 2**20 and int(shm.findtext("maxMessageSize")) == 16 * 2**20
    (participant,) = [e for e in elements if e.tag == "participant"]
    assert participant.get("is_default_profile") == "true"
    assert [t.text for t in participant.find("rtps/userTransports")] == list(descriptors)
    assert participant.findtext("rtps/useBuiltinTransports") == "false"


def test_launch_file_offers_the_profile():
    launch = (REPO / "launch" / "segment.launch.py").read_text()
    assert '"fastdds_profile"' in launch and '"fastdds_shm.xml"' in launch
