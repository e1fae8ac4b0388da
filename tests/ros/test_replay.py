"""python -m gara_ros.replay on bags these tests record (rosbags; sqlite3 and MCAP; raw and jpeg images): every
frame segmented, outputs with their image's header, masks against the scene's true masks, the output bag read back
(rosbags, and Foxglove's mcap library), --compare, prompt files, track mode and removals, 3D from a depth topic,
one-line errors, interrupted runs. No ROS graph."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from mcap.reader import make_reader
from mcap_ros2.decoder import DecoderFactory
from rosbags.highlevel import AnyReader

from rosbags.typesys import Stores, get_types_from_msg, get_typestore

from gara_ros.bag import PROMPT_TYPE, typestore
from gara_ros.conversions import image_to_array
from gara_ros.replay import VIDEO_NAME, main
from gara_ros.share import share_path
from tests.ros.bags import (
    CX, CY, DELAY_NS, DEPTH_FRAME, DEPTH_TOPIC, FX, FY, IMAGE_TOPIC, INFO_TOPIC, IOU_BOUND, PROMPT_TOPIC, SLAB_BOX,
    SLAB_M, SQUARE_M, SQUARE_POINT, header, prompt_msg, record, scene, scene_depth, stamp_ns,
)

REPO = Path(__file__).parents[2]
OUTPUTS = ("result", "mask", "labels", "overlay")


def replay(*args) -> int:
    return main([str(a) for a in args] + ["--quiet"])


def read_bag(path: Path) -> dict[str, list]:
    """topic -> [(log time, message)], read back with rosbags."""
    topics: dict[str, list] = {}
    with AnyReader([path], default_typestore=typestore()) as reader:
        for connection, log_time, raw in reader.messages():
            topics.setdefault(connection.topic, []).append((log_time, reader.deserialize(raw, connection.msgtype)))
    return topics


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


def check_segmented(out: Path, frames: int, truth: list[np.ndarray], prefix: str = "/segment_node") -> dict:
    """Every frame has every output, stamped with its image's header and recorded at its image's time, and each
    object's mask (from ~/labels, by its label in ~/result) matches the scene within IOU_BOUND."""
    topics = read_bag(out)
    images = topics[IMAGE_TOPIC]
    assert len(images) == frames
    for name in OUTPUTS:
        outputs = topics[f"{prefix}/{name}"]
        assert [(t, m.header) for t, m in outputs] == [(t, m.header) for t, m in images], name
    for (_, result), (_, labels), true_masks in zip(topics[f"{prefix}/result"], topics[f"{prefix}/labels"], truth,
                                                    strict=True):
        ids = {o.object_id: o.label for o in result.objects}
        assert set(ids) == {"square", "slab"}
        label_image = image_to_array(labels)[..., 0]
        for index, object_id in enumerate(("square", "slab")):
            assert iou(label_image == ids[object_id], true_masks[index]) >= IOU_BOUND, (object_id, result.header)
    return topics


def frame0_prompt() -> list:
    """The prompt recorded just after frame 0, stamped with frame 0."""
    return [(stamp_ns(0) + 2 * DELAY_NS, prompt_msg(stamp_ns(0)))]


PROMPT_FILE = f"""objects:
  - id: square
    frame: 0
    points: [[{SQUARE_POINT[0]}, {SQUARE_POINT[1]}]]
  - id: slab
    frame: 0
    box: {list(SLAB_BOX)}
"""


@pytest.mark.parametrize("storage,compressed,prompts", [
    ("mcap", False, "topic"), ("sqlite3", True, "topic"), ("mcap", True, "file"), ("sqlite3", False, "file"),
])
def test_every_frame_is_segmented_with_its_header(tmp_path, storage, compressed, prompts):
    bag = record(tmp_path / "in", storage=storage, compressed=compressed,
                 prompts=frame0_prompt() if prompts == "topic" else None)
    args = [bag.path, "--image-topic", IMAGE_TOPIC, "--out", tmp_path / "out", "--storage", storage]
    if prompts == "file":
        (tmp_path / "prompts.yaml").write_text(PROMPT_FILE)
        args += ["--prompts", tmp_path / "prompts.yaml"]
    assert replay(*args) == 0
    topics = check_segmented(tmp_path / "out", bag.frames, bag.truth)
    assert (PROMPT_TOPIC in topics) == (prompts == "topic")
    video = cv2.VideoCapture(str(tmp_path / "out" / VIDEO_NAME))
    assert int(video.get(cv2.CAP_PROP_FRAME_COUNT)) == bag.frames
    ok, first = video.read()
    overlay = image_to_array(topics["/segment_node/overlay"][0][1])
    assert ok and first.shape == overlay.shape and np.abs(first.astype(int) - overlay).mean() < 8  # mp4 is lossy


def test_output_mcap_is_standard_for_foxglove(tmp_path):
    """Foxglove's own mcap library decodes the outputs (zstd chunks with --compress) from the ros2msg schemas
    written into the file."""
    bag = record(tmp_path / "in", frames=2, prompts=frame0_prompt())
    assert replay(bag.path, "--image-topic", IMAGE_TOPIC, "--out", tmp_path / "out", "--no-video", "--compress") == 0
    with open(tmp_path / "out" / "out.mcap", "rb") as file:
        reader = make_reader(file, decoder_factories=[DecoderFactory()])
        assert {index.compression for index in reader.get_summary().chunk_indexes} == {"zstd"}
        assert {s.name: s.encoding for s in reader.get_summary().schemas.values()} == {
            "sensor_msgs/msg/Image": "ros2msg", "gara_ros/msg/SegmentPrompt": "ros2msg",
            "gara_ros/msg/SegmentResult": "ros2msg"}
        decoded = {}
        for _, channel, _, msg in reader.iter_decoded_messages():
            decoded.setdefault(channel.topic, []).append(msg)
    assert [o.object_id for o in decoded["/segment_node/result"][1].objects] == ["square", "slab"]
    mask = decoded["/segment_node/mask"][1]
    assert (mask.encoding, mask.width, mask.height) == ("mono8", 128, 96)
    assert decoded["/segment_node/mask"][1].header.stamp.nanosec == stamp_ns(1) % 10**9


def test_recorded_prompts_are_matched_by_stamp_as_the_node_does(tmp_path, capsys):
    """A prompt recorded late names an earlier frame by its stamp: that frame is segmented (again), later frames
    follow; a stamp with no frame within stamp_tolerance is one log line naming the bag. --mode once: only the
    frames a prompt names."""
    prompts = [(stamp_ns(3) + 2 * DELAY_NS, prompt_msg(stamp_ns(1))),  # names frame 1, recorded after frame 3
               (stamp_ns(4) + 2 * DELAY_NS, prompt_msg(stamp_ns(7), slab=False))]  # a frame not seen yet
    bag = record(tmp_path / "in", frames=6, prompts=prompts)
    for mode, expected in (("persist", [1, 4, 5]), ("once", [1])):
        out = tmp_path / mode
        assert replay(bag.path, "--image-topic", IMAGE_TOPIC, "--out", out, "--mode", mode, "--no-video") == 0
        results = read_bag(out)["/segment_node/result"]
        assert [(m.header.stamp.nanosec - stamp_ns(0) % 10**9) // (stamp_ns(1) - stamp_ns(0)) for _, m in results] \
            == expected
        assert results[0][0] == stamp_ns(1) + DELAY_NS  # recorded at its image's time
        log = capsys.readouterr().err
        assert f"warning: {bag.path}: prompt for 'square' ignored: no buffered image within stamp_tolerance" in log


def test_prompt_file_objects_join_on_their_frame_and_stamp(tmp_path):
    """An object from its frame (index) or stamp on; persisted objects stay when a new one joins."""
    (tmp_path / "p.yaml").write_text(f"""objects:
  - {{id: square, frame: 1, points: [[{SQUARE_POINT[0] + 2}, {SQUARE_POINT[1]}]]}}
  - {{id: slab, stamp: {(stamp_ns(3) - 1_000_000) / 1e9:.3f}, box: {list(SLAB_BOX)}}}
  - {{id: ghost, stamp: {stamp_ns(9) / 1e9}, box: [1, 1, 5, 5]}}
""")
    bag = record(tmp_path / "in", frames=5)
    assert replay(bag.path, "--image-topic", IMAGE_TOPIC, "--prompts", tmp_path / "p.yaml", "--out", tmp_path / "out",
                  "--no-video") == 0
    results = read_bag(tmp_path / "out")["/segment_node/result"]
    assert [[o.object_id for o in m.objects] for _, m in results] == [
        ["square"], ["square"], ["square", "slab"], ["square", "slab"]]
    assert results[0][1].header.stamp == header(stamp_ns(1)).stamp


# --- track mode and 3D, as the node has them ---------------------------------------------------------
def status_names() -> dict[int, str]:
    obj = typestore().types["gara_ros/msg/ObjectResult"]
    return {obj.STATUS_PROMPTED: "prompted", obj.STATUS_TRACKED: "tracked", obj.STATUS_LOST: "lost"}


def object_mask(result, labels, object_id: str) -> np.ndarray:
    """An object's (H,W) mask in ~/labels, by its label in ~/result (none if it is not in the result)."""
    label = next((o.label for o in result.objects if o.object_id == object_id), None)
    return image_to_array(labels)[..., 0] == label if label is not None else np.zeros((96, 128), bool)


def test_track_mode_follows_the_moving_square_from_one_prompt(tmp_path):
    """--mode track: the square, prompted once at frame 0 by a point that it has left from frame 9 on, is followed
    over 24 frames (2 px per frame) with per-object statuses; the slab joins at frame 5 from the prompt file, and the
    square is not prompted again then."""
    (tmp_path / "p.yaml").write_text(f"""objects:
  - {{id: square, frame: 0, points: [[{SQUARE_POINT[0]}, {SQUARE_POINT[1]}]]}}
  - {{id: slab, frame: 5, box: {list(SLAB_BOX)}}}
""")
    bag = record(tmp_path / "in", frames=24)
    assert replay(bag.path, "--image-topic", IMAGE_TOPIC, "--prompts", tmp_path / "p.yaml", "--out", tmp_path / "out",
                  "--mode", "track", "--no-video") == 0
    topics = read_bag(tmp_path / "out")
    results, labels = [m for _, m in topics["/segment_node/result"]], [m for _, m in topics["/segment_node/labels"]]
    assert [m.header for m in results] == [m.header for _, m in topics[IMAGE_TOPIC]]
    names = status_names()
    assert [[(o.object_id, names[o.status]) for o in m.objects] for m in results] == (
        [[("square", "prompted")]] + [[("square", "tracked")]] * 4
        + [[("square", "tracked"), ("slab", "prompted")]] + [[("square", "tracked"), ("slab", "tracked")]] * 18)
    # measured: the square's IoU 0.89 to 0.97 on every frame; --mode persist (the frame-0 point again) falls from
    # 0.83 at frame 9 to 0.00 at frame 23
    for index, (result, label_image, truth) in enumerate(zip(results, labels, bag.truth, strict=True)):
        assert iou(object_mask(result, label_image, "square"), truth[0]) >= IOU_BOUND, index
        if index >= 5:
            assert iou(object_mask(result, label_image, "slab"), truth[1]) >= IOU_BOUND, index


@pytest.mark.parametrize("mode,expected", [
    ("track", [["square", "slab"]] * 3 + [["square"]] * 3),
    # persist: frame 3's job was handed out with the prompts of its time, before the removal recorded after it
    ("persist", [["square", "slab"]] * 4 + [["square"]] * 2),
])
def test_a_recorded_removal_drops_the_object(tmp_path, mode, expected):
    """A SegmentPrompt on the bag's prompt topic that carries only a removal (recorded after frame 3) ends the
    slab's segmentation; the square goes on."""
    removal = prompt_msg(0, square=False, slab=False, remove=("slab",))
    bag = record(tmp_path / "in", frames=6, prompts=frame0_prompt() + [(stamp_ns(3) + 2 * DELAY_NS, removal)])
    assert replay(bag.path, "--image-topic", IMAGE_TOPIC, "--out", tmp_path / "out", "--mode", mode,
                  "--no-video") == 0
    results = read_bag(tmp_path / "out")["/segment_node/result"]
    assert [[o.object_id for o in m.objects] for _, m in results] == expected


def test_prompts_recorded_before_segment_prompt_had_removals_are_replayed(tmp_path):
    """A bag from an earlier release records SegmentPrompt without `remove` (its own definition, which rosbags
    reads it with): its prompts work as before."""
    text = (share_path("msg") / "SegmentPrompt.msg").read_text()
    old = get_typestore(Stores.ROS2_KILTED)
    old.register({**{name: definition for path in share_path("msg").glob("*.msg")
                     for name, definition in get_types_from_msg(path.read_text(), f"gara_ros/msg/{path.stem}").items()},
                  **get_types_from_msg(text.replace("string[] remove", ""), PROMPT_TYPE)})
    assert "remove" not in [name for name, _ in old.fielddefs[PROMPT_TYPE][1]]
    bag = record(tmp_path / "in", frames=2, prompts=frame0_prompt(), store=old)
    assert replay(bag.path, "--image-topic", IMAGE_TOPIC, "--out", tmp_path / "out", "--no-video") == 0
    check_segmented(tmp_path / "out", bag.frames, bag.truth)


def test_depth_topic_gives_points_on_the_known_surfaces(tmp_path):
    """--depth-topic/--camera-info-topic: the output bag has each frame's point cloud and markers in the depth
    image's frame, stamped as the image; every point lies on the surface its pixel sees (the square's face at 1.2 m,
    the slab's at 1.0 m, within 1 mm: millimetre depth); each object's centroid in the result lies within 2 cm of its
    face's true centroid."""
    bag = record(tmp_path / "in", frames=3, prompts=frame0_prompt(), depth=True)
    assert replay(bag.path, "--image-topic", IMAGE_TOPIC, "--out", tmp_path / "out", "--no-video",
                  "--depth-topic", DEPTH_TOPIC, "--camera-info-topic", INFO_TOPIC) == 0
    topics = read_bag(tmp_path / "out")
    images = [m.header for _, m in topics[IMAGE_TOPIC]]
    for name in ("points", "markers"):
        assert len(topics[f"/segment_node/{name}"]) == bag.frames, name
    point_field = typestore().types["sensor_msgs/msg/PointField"]
    for index, ((_, cloud), (_, markers), (_, result)) in enumerate(zip(
            topics["/segment_node/points"], topics["/segment_node/markers"], topics["/segment_node/result"],
            strict=True)):
        assert (cloud.header.stamp, cloud.header.frame_id) == (images[index].stamp, DEPTH_FRAME)
        assert {m.header.frame_id for m in markers.markers} == {DEPTH_FRAME}
        assert [(f.name, f.offset, f.datatype) for f in cloud.fields] == [
            ("x", 0, point_field.FLOAT32), ("y", 4, point_field.FLOAT32), ("z", 8, point_field.FLOAT32),
            ("label", 12, point_field.UINT32)]
        points = np.frombuffer(cloud.data.tobytes(), np.dtype({"names": ["x", "y", "z", "label"],
                                                               "formats": ["<f4", "<f4", "<f4", "<u4"],
                                                               "offsets": [0, 4, 8, 12], "itemsize": 16}))
        u = np.rint(points["x"] * FX / points["z"] + CX).astype(int)  # the pixel each point was seen at
        v = np.rint(points["y"] * FY / points["z"] + CY).astype(int)
        assert np.abs(points["z"] - scene_depth(index)[v, u]).max() <= 1e-3
        labels = {o.object_id: o.label for o in result.objects}
        _, truth = scene(index)
        for object_id, face_m, true_mask in (("square", SQUARE_M, truth[0]), ("slab", SLAB_M, truth[1])):
            mine = points[points["label"] == labels[object_id]]
            assert len(mine) >= 0.8 * true_mask.sum() and np.abs(mine["z"] - face_m).max() <= 1e-3, object_id
            rows, cols = np.nonzero(true_mask)
            true_centroid = [((cols - CX) * face_m / FX).mean(), ((rows - CY) * face_m / FY).mean(), face_m]
            (obj,) = [o for o in result.objects if o.object_id == object_id]
            assert obj.depth_points == len(mine)
            assert np.linalg.norm([obj.centroid.x, obj.centroid.y, obj.centroid.z] - np.array(true_centroid)) <= 0.02
        cubes = [m for m in markers.markers if m.type == typestore().types["visualization_msgs/msg/Marker"].CUBE]
        assert sorted((m.id, m.pose.position.z) for m in cubes) == pytest.approx(
            sorted((o.label, o.centroid.z) for o in result.objects))


def test_compare_writes_both_models_and_a_side_by_side(tmp_path):
    bag = record(tmp_path / "in", frames=3, prompts=frame0_prompt())
    assert replay(bag.path, "--image-topic", IMAGE_TOPIC, "--out", tmp_path / "out", "--compare", "none") == 0
    topics = read_bag(tmp_path / "out")
    results = {label: topics[f"/segment_node/{label}/result"] for label in ("gara", "sam")}
    assert [m.header for _, m in results["gara"]] == [m.header for _, m in results["sam"]] == [
        m.header for _, m in topics[IMAGE_TOPIC]]
    scores = {label: [o.iou_score for _, m in r for o in m.objects] for label, r in results.items()}
    assert scores["gara"] != scores["sam"]  # two models
    for (_, pair), (_, left), (_, right) in zip(topics["/segment_node/side_by_side"],
                                                 topics["/segment_node/gara/overlay"],
                                                 topics["/segment_node/sam/overlay"], strict=True):
        pixels, left, right = image_to_array(pair), image_to_array(left), image_to_array(right)
        caption = pixels.shape[0] - left.shape[0]
        assert pixels.shape[1] == 2 * left.shape[1] and caption > 0
        assert np.array_equal(pixels[caption:, :128], left) and np.array_equal(pixels[caption:, 128:], right)
    video = cv2.VideoCapture(str(tmp_path / "out" / VIDEO_NAME))
    assert video.get(cv2.CAP_PROP_FRAME_WIDTH) == 256 and int(video.get(cv2.CAP_PROP_FRAME_COUNT)) == 3


def test_replay_loads_no_ros(tmp_path):
    bag = record(tmp_path / "in", frames=1, prompts=frame0_prompt())
    code = (f"import sys; from gara_ros.replay import main; rc = main([{str(bag.path)!r}, '--image-topic', "
            f"{IMAGE_TOPIC!r}, '--out', {str(tmp_path / 'out')!r}, '--quiet']); "
            "print(rc, sorted(m for m in sys.modules if m.split('.')[0] in ('rclpy', 'sensor_msgs', 'std_msgs', "
            "'builtin_interfaces', 'geometry_msgs') or m.startswith('gara_ros.msg')))")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert run.stdout.strip() == "0 []", run.stderr


# --- errors: one line naming the file ------------------------------------------------------------
def error_line(capsys, *args) -> str:
    with pytest.raises(SystemExit) as exit_info:
        replay(*args)
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_info.value.code == 2 and err[-1].startswith("error: "), err
    return err[-1]


def test_missing_topic_lists_the_topics(tmp_path, capsys):
    bag = record(tmp_path / "in", frames=1, prompts=frame0_prompt())
    line = error_line(capsys, bag.path, "--image-topic", "/camera/color", "--out", tmp_path / "out")
    assert line == (f"error: {bag.path}: no topic /camera/color; the bag has: /camera/image_raw "
                    "(sensor_msgs/msg/Image), /gara/prompts (gara_ros/msg/SegmentPrompt)")
    line = error_line(capsys, bag.path, "--image-topic", PROMPT_TOPIC, "--out", tmp_path / "out")
    assert "topic /gara/prompts is gara_ros/msg/SegmentPrompt; expected sensor_msgs/msg/Image or " in line
    bare = record(tmp_path / "bare", frames=1)
    line = error_line(capsys, bare.path, "--image-topic", IMAGE_TOPIC, "--out", tmp_path / "out")
    assert f"{bare.path}: no prompts: the bag has no /gara/prompts (topics: /camera/image_raw)" in line
    assert not (tmp_path / "out").exists()


def test_depth_topics_are_checked(tmp_path, capsys):
    bag = record(tmp_path / "in", frames=1, prompts=frame0_prompt(), depth=True)
    line = error_line(capsys, bag.path, "--image-topic", IMAGE_TOPIC, "--depth-topic", "/camera/depth",
                      "--camera-info-topic", INFO_TOPIC, "--out", tmp_path / "out")
    assert line == (f"error: {bag.path}: no topic /camera/depth; the bag has: {INFO_TOPIC} "
                    f"(sensor_msgs/msg/CameraInfo), {DEPTH_TOPIC} (sensor_msgs/msg/Image), {IMAGE_TOPIC} "
                    f"(sensor_msgs/msg/Image), {PROMPT_TOPIC} (gara_ros/msg/SegmentPrompt)")
    line = error_line(capsys, bag.path, "--image-topic", IMAGE_TOPIC, "--depth-topic", DEPTH_TOPIC,
                      "--camera-info-topic", DEPTH_TOPIC, "--out", tmp_path / "out")
    assert line == (f"error: {bag.path}: topic {DEPTH_TOPIC} is sensor_msgs/msg/Image; expected "
                    "sensor_msgs/msg/CameraInfo")
    with pytest.raises(SystemExit) as exit_info:
        replay(bag.path, "--image-topic", IMAGE_TOPIC, "--depth-topic", DEPTH_TOPIC, "--out", tmp_path / "out")
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.strip().endswith("error: 3D needs both --depth-topic and --camera-info-topic")
    assert not (tmp_path / "out").exists()


def test_truncated_or_corrupt_bags(tmp_path, capsys):
    bag = record(tmp_path / "in", frames=8, prompts=frame0_prompt(), zstd=True)
    data = (bag.path / "in.mcap").read_bytes()
    (tmp_path / "cut.mcap").write_bytes(data[:len(data) // 2])
    line = error_line(capsys, tmp_path / "cut.mcap", "--image-topic", IMAGE_TOPIC, "--out", tmp_path / "o1")
    assert line == f"error: {tmp_path / 'cut.mcap'}: cannot read the bag: File end magic is invalid."
    (tmp_path / "junk.db3").write_bytes(b"not a database" * 100)
    line = error_line(capsys, tmp_path / "junk.db3", "--image-topic", IMAGE_TOPIC, "--out", tmp_path / "o2")
    assert "junk.db3: cannot read the bag: Cannot open database" in line
    (bag.path / "metadata.yaml").rename(tmp_path / "metadata.yaml")
    line = error_line(capsys, bag.path, "--image-topic", IMAGE_TOPIC, "--out", tmp_path / "o3")
    assert f"{bag.path}: no metadata.yaml" in line and "in.mcap" in line
    # Corrupt data in the last chunk: the frames before it are kept, then one line. (Once: only frame 0 is
    # segmented, so that reading 40 frames is quick.)
    long = record(tmp_path / "long", frames=40, prompts=frame0_prompt(), zstd=True)
    data = bytearray((long.path / "long.mcap").read_bytes())
    with open(long.path / "long.mcap", "rb") as file:
        *_, last = sorted(make_reader(file).get_summary().chunk_indexes, key=lambda index: index.chunk_start_offset)
    summary_start = int.from_bytes(data[-37 + 9:-37 + 17], "little")  # from the footer
    damaged = bytearray(data)
    damaged[summary_start + 1:summary_start + 9] = b"\xff" * 8  # the first index record's length: 2**64 - 1
    (tmp_path / "index.mcap").write_bytes(bytes(damaged))
    line = error_line(capsys, tmp_path / "index.mcap", "--image-topic", IMAGE_TOPIC, "--out", tmp_path / "o5")
    assert line.startswith(f"error: {tmp_path / 'index.mcap'}: cannot read the bag: ")
    middle = last.chunk_start_offset + last.chunk_length - last.compressed_size // 2  # inside the compressed data
    data[middle:middle + 512] = bytes(512)
    (tmp_path / "bad.mcap").write_bytes(bytes(data))
    line = error_line(capsys, tmp_path / "bad.mcap", "--image-topic", IMAGE_TOPIC, "--out", tmp_path / "o4",
                      "--mode", "once")
    assert f"{tmp_path / 'bad.mcap'}: unreadable data part-way through the bag: " in line
    topics = read_bag(tmp_path / "o4")
    assert 0 < len(topics[IMAGE_TOPIC]) < long.frames and len(topics["/segment_node/result"]) == 1
    assert not (tmp_path / "o4.partial").exists()


def test_unsupported_encoding_is_named_and_nothing_segmented(tmp_path, capsys):
    bag = record(tmp_path / "in", frames=2, prompts=frame0_prompt(), encoding="yuv422")
    assert replay(bag.path, "--image-topic", IMAGE_TOPIC, "--out", tmp_path / "out") == 1
    err = capsys.readouterr().err
    assert re.search(rf"error: {re.escape(str(bag.path))}: frame 1700000000\.000 s skipped: unsupported encoding "
                     r"'yuv422' \(supported: rgb8, bgr8", err)
    assert "replay: 0 of 2 frames segmented" in err
    assert len(read_bag(tmp_path / "out")[IMAGE_TOPIC]) == 2


@pytest.mark.parametrize("text,message", [
    ("objects:\n  - {id: cup, frame: 0, pionts: [[1, 2]]}\n",
     "object #0 ('cup'): unknown key 'pionts' (did you mean 'points'?)"),
    ("objects:\n  - {id: cup, points: [[1, 2]]}\n", "object #0 ('cup'): needs either 'frame'"),
    ("objects:\n  - {id: cup, frame: 0, points: [[1, 2]], labels: [1, 1]}\n", "labels must be one 1"),
    ("objects:\n  - {id: cup, frame: 0, box: [1, 2, 3]}\n", "box must be [x1, y1, x2, y2]"),
    ("objects:\n  - {id: cup, frame: 0, points: [[1, 2]]\n", "not valid YAML at line 3"),
    ("object:\n  - {id: cup, frame: 0}\n", "expected one key, 'objects:'"),
    ("objects:\n  - {id: a, frame: 0, box: [1, 2, 3, 4]}\n  - {id: a, frame: 1, box: [1, 2, 3, 4]}\n",
     "object #1 ('a'): the id is used twice"),
    ("objects:\n  - {id: cup, frame: 6, box: [1, 2, 3, 4]}\n",
     "object 'cup': frame 6, but /camera/image_raw has 6 images (0 to 5)"),
])
def test_prompt_file_typos_are_one_line(tmp_path, capsys, text, message):
    bag = record(tmp_path / "in", frames=6)
    (tmp_path / "p.yaml").write_text(text)
    line = error_line(capsys, bag.path, "--image-topic", IMAGE_TOPIC, "--prompts", tmp_path / "p.yaml", "--out",
                      tmp_path / "out")
    assert line.startswith(f"error: {tmp_path / 'p.yaml'}: ") and message in line
    assert not (tmp_path / "out").exists()


def test_settings_come_from_the_node_params_file(tmp_path, capsys):
    """--params takes a node params file (unknown names refused)."""
    late = prompt_msg(stamp_ns(0) + 30_000_000)  # 30 ms after frame 0's stamp
    bag = record(tmp_path / "in", frames=2, prompts=[(stamp_ns(0) + 2 * DELAY_NS, late)])
    params = tmp_path / "params.yaml"
    params.write_text("segment_node:\n  ros__parameters:\n    stamp_tolerance: 0.01\n")
    assert replay(bag.path, "--image-topic", IMAGE_TOPIC, "--params", params, "--out", tmp_path / "o1") == 1
    assert "no buffered image within stamp_tolerance" in capsys.readouterr().err  # 30 ms off, 10 ms allowed
    params.write_text("/**:\n  ros__parameters:\n    persit: true\n")
    line = error_line(capsys, bag.path, "--image-topic", IMAGE_TOPIC, "--params", params, "--out", tmp_path / "o2")
    assert line.startswith(f"error: {params}: unknown parameter 'persit' of segment_node (did you mean 'persist'?)")


# --- interrupted runs ----------------------------------------------------------------------------
def start_replay(bag: Path, out: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "gara_ros.replay", str(bag), "--image-topic", IMAGE_TOPIC,
                             "--out", str(out), "--no-video"], cwd=REPO, stderr=subprocess.PIPE,
                            env=dict(os.environ, PYTHONUNBUFFERED="1"))


def wait_for_frames(process: subprocess.Popen, count: int) -> None:
    """Reads the progress bar until it shows at least `count` frames done."""
    text = b""
    while True:
        char = process.stderr.read(1)
        assert char, f"the replay ended before {count} frames: {text.decode()[-500:]}"
        text += char
        done = re.findall(rb"\| *(\d+)/\d+ \[", text[-200:])
        if done and int(done[-1]) >= count:
            return


def test_interrupted_run_leaves_a_readable_bag_of_the_frames_done(tmp_path):
    bag = record(tmp_path / "in", frames=150, prompts=frame0_prompt())
    process = start_replay(bag.path, tmp_path / "out")
    wait_for_frames(process, 3)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 130, err.decode()
    topics = read_bag(tmp_path / "out")
    done = len(topics["/segment_node/result"])
    assert 3 <= done < bag.frames and b"replay: interrupted: " in err
    assert [m.header for _, m in topics["/segment_node/result"]] == [m.header for _, m in topics[IMAGE_TOPIC]][:done]


def test_killed_run_leaves_no_bag_and_is_named_at_the_next_start(tmp_path, capsys):
    bag = record(tmp_path / "in", frames=150, prompts=frame0_prompt())
    process = start_replay(bag.path, tmp_path / "out")
    wait_for_frames(process, 2)
    process.kill()
    process.wait(timeout=60)
    assert not (tmp_path / "out").exists() and (tmp_path / "out.partial").is_dir()
    line = error_line(capsys, bag.path, "--image-topic", IMAGE_TOPIC, "--out", tmp_path / "out")
    assert line == (f"error: {tmp_path / 'out.partial'} is left from a run that was killed before it could close its "
                    "output; remove it")
