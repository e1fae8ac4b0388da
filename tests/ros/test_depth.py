"""3D from an aligned depth image without a ROS graph: depth and camera info conversions, back-projection of masks
against synthetic depth of known geometry, the point cloud's bytes, markers, and the core matching depth by stamp."""

import numpy as np
import pytest
from sensor_msgs.msg import CameraInfo, Image, PointField
from std_msgs.msg import Header
from visualization_msgs.msg import Marker

from gara_model.predictor import GaraPredictor
from gara_ros import conversions
from gara_ros.conversions import ConversionError, array_to_image
from gara_ros.depth import Intrinsics, object_points
from tests.ros.harness import wait_for
from tests.ros.helpers import Recorder, box_object, point_object, prompt, scene, stamp

# A 96 x 64 camera looking at a wall 2 m away; in front of it two boxes facing the camera (XYXY inclusive pixels):
# "near" at 1.0 m and "far" at 1.5 m.
WIDTH, HEIGHT = 96, 64
CAMERA = Intrinsics(fx=80.0, fy=80.0, cx=47.5, cy=31.5, width=WIDTH, height=HEIGHT)
WALL = 2.0
BOXES = {"near": ((30, 20, 59, 43), 1.0), "far": ((5, 5, 20, 15), 1.5)}
SURFACE_TOLERANCE = 1e-5  # metres: a point's distance from the surface its pixel sees (float32 arithmetic)
CENTROID_TOLERANCE = 1e-4  # metres


def box_mask(box, grow=0):
    x1, y1, x2, y2 = box
    mask = np.zeros((HEIGHT, WIDTH), bool)
    mask[max(y1 - grow, 0):y2 + grow + 1, max(x1 - grow, 0):x2 + grow + 1] = True
    return mask


def synthetic_depth() -> np.ndarray:
    depth = np.full((HEIGHT, WIDTH), WALL, np.float32)
    for box, z in BOXES.values():
        depth[box_mask(box)] = z
    return depth


def true_centroid(box, z):
    """The mean of the box face's pixel centres back-projected at depth z, and the face's extent in x and y."""
    x1, y1, x2, y2 = box
    u, v = np.meshgrid(np.arange(x1, x2 + 1), np.arange(y1, y2 + 1))
    centroid = [((u - CAMERA.cx) * z / CAMERA.fx).mean(), ((v - CAMERA.cy) * z / CAMERA.fy).mean(), z]
    extent = [(x2 - x1) * z / CAMERA.fx, (y2 - y1) * z / CAMERA.fy, 0.0]
    return np.array(centroid), np.array(extent)


def points_of(masks, depth=None, depth_band=0.5, max_depth=10.0):
    boxes = [conversions.mask_box_area(m)[0] for m in masks]
    return object_points(synthetic_depth() if depth is None else depth, np.stack(masks), boxes, CAMERA,
                         max_depth, depth_band, "camera_optical")


def test_points_lie_on_the_boxes_faces_with_their_centroids_and_extents():
    result = points_of([box_mask(box) for box, _ in BOXES.values()])
    for label, (name, (box, z)) in enumerate(BOXES.items(), start=1):
        points = result.points[result.labels == label]
        x1, y1, x2, y2 = box
        assert len(points) == result.counts[label - 1] == (x2 - x1 + 1) * (y2 - y1 + 1), name
        assert np.abs(points[:, 2] - z).max() <= SURFACE_TOLERANCE  # on the face's plane ...
        u = points[:, 0] * CAMERA.fx / points[:, 2] + CAMERA.cx
        v = points[:, 1] * CAMERA.fy / points[:, 2] + CAMERA.cy
        assert u.min() == pytest.approx(x1, abs=1e-3) and u.max() == pytest.approx(x2, abs=1e-3)  # ... inside it
        assert v.min() == pytest.approx(y1, abs=1e-3) and v.max() == pytest.approx(y2, abs=1e-3)
        centroid, extent = true_centroid(box, z)
        assert np.abs(result.centroids[label - 1] - centroid).max() <= CENTROID_TOLERANCE
        assert np.abs(result.extents[label - 1] - extent).max() <= CENTROID_TOLERANCE
    assert (result.points.dtype, result.labels.dtype, result.frame_id) == (np.float32, np.uint32, "camera_optical")


def test_a_mask_spilling_onto_the_wall_keeps_only_the_object_within_the_depth_band():
    box, z = BOXES["near"]
    spilled = box_mask(box, grow=3)  # SAM's mask 3 px too large all round: those pixels see the wall
    kept = points_of([spilled], depth_band=0.5)
    assert np.abs(kept.points[:, 2] - z).max() <= SURFACE_TOLERANCE
    assert np.abs(kept.centroids[0] - true_centroid(box, z)[0]).max() <= CENTROID_TOLERANCE
    everything = points_of([spilled], depth_band=0.0)
    assert everything.counts[0] == spilled.sum() and everything.extents[0, 2] == pytest.approx(WALL - z)


def test_invalid_depth_is_skipped():
    depth = synthetic_depth()
    box, _ = BOXES["near"]
    depth[20, 30:40] = 0.0  # no return
    depth[21, 30:40] = np.nan
    depth[22, 30:40] = np.inf
    depth[23, 30:40] = 12.0  # beyond max_depth
    result = points_of([box_mask(box)], depth=depth, max_depth=10.0, depth_band=0.0)
    assert result.counts[0] == box_mask(box).sum() - 40 and np.isfinite(result.points).all()
    nothing = points_of([box_mask(box)], depth=np.zeros_like(depth))
    assert nothing.counts.tolist() == [0] and nothing.points.shape == (0, 3)
    assert nothing.centroids.tolist() == [[0.0, 0.0, 0.0]]


def test_lost_objects_have_no_points():
    result = object_points(synthetic_depth(), box_mask(BOXES["near"][0])[None], [BOXES["near"][0]], CAMERA, 10.0,
                           0.5, "camera", num_objects=3)
    assert result.counts.tolist()[1:] == [0, 0] and set(result.labels.tolist()) == {1}


# --- messages --------------------------------------------------------------------------------------
def test_depth_images_in_millimetres_and_metres():
    millimetres = np.array([[0, 1000], [1500, 65535]], np.uint16)
    converted = conversions.depth_to_metres(array_to_image(millimetres, "16UC1"))
    assert converted.dtype == np.float32
    np.testing.assert_allclose(converted, [[0.0, 1.0], [1.5, 65.535]], rtol=1e-6)
    metres = np.array([[np.nan, 1.25, 0.0], [2.0, 0.0, 7.5]], np.float32)
    for order in "<>":  # a big-endian camera too
        msg = Image(height=2, width=3, encoding="32FC1", is_bigendian=order == ">", step=3 * 4 + 4)  # padded rows
        msg.data.frombytes(np.pad(metres.astype(order + "f4"), ((0, 0), (0, 1))).tobytes())
        assert np.array_equal(conversions.depth_to_metres(msg), metres, equal_nan=True)
    with pytest.raises(ConversionError, match="unsupported encoding 'rgb8' .supported: 16UC1, 32FC1."):
        conversions.depth_to_metres(array_to_image(scene(), "rgb8"))


def test_intrinsics_from_camera_info():
    info = CameraInfo(width=WIDTH, height=HEIGHT, k=[80.0, 0.0, 47.5, 0.0, 81.0, 31.5, 0.0, 0.0, 1.0])
    assert conversions.intrinsics_from_camera_info(info) == Intrinsics(80.0, 81.0, 47.5, 31.5, WIDTH, HEIGHT)
    with pytest.raises(ConversionError, match="fx=0.0.*positive focal lengths"):
        conversions.intrinsics_from_camera_info(CameraInfo(width=WIDTH, height=HEIGHT))  # all zero: uncalibrated


def read_cloud(msg) -> np.ndarray:
    """What sensor_msgs_py.point_cloud2.read_points does: a structured array from the fields' names, offsets and
    types, point_step bytes per point, in the message's byte order."""
    types = {PointField.FLOAT32: "f4", PointField.UINT32: "u4", PointField.UINT16: "u2"}
    order = ">" if msg.is_bigendian else "<"
    dtype = np.dtype({"names": [f.name for f in msg.fields], "offsets": [f.offset for f in msg.fields],
                      "formats": [order + types[f.datatype] for f in msg.fields], "itemsize": msg.point_step})
    return np.frombuffer(bytes(msg.data), dtype, count=msg.width * msg.height)


def test_point_cloud_bytes_read_back_as_the_points_and_labels():
    result = points_of([box_mask(box) for box, _ in BOXES.values()])
    header = Header(stamp=stamp(3.5), frame_id="camera_optical")
    msg = conversions.cloud_msg(header, result)
    assert (msg.height, msg.width, msg.point_step, msg.is_dense) == (1, len(result.points), 16, True)
    assert [(f.name, f.offset, f.count) for f in msg.fields] == [("x", 0, 1), ("y", 4, 1), ("z", 8, 1),
                                                                  ("label", 12, 1)]
    cloud = read_cloud(msg)
    assert np.array_equal(np.stack([cloud["x"], cloud["y"], cloud["z"]], axis=1), result.points)
    assert np.array_equal(cloud["label"], result.labels) and msg.header.frame_id == "camera_optical"


def test_markers_are_a_box_and_an_id_per_object_with_depth():
    result = object_points(synthetic_depth(), np.stack([box_mask(BOXES["near"][0]), np.zeros((HEIGHT, WIDTH), bool)]),
                           [BOXES["near"][0], (0, 0, 0, 0)], CAMERA, 10.0, 0.5, "camera_optical")
    markers = conversions.markers_msg(Header(frame_id="camera_optical"), ["near", "hidden"], result).markers
    assert [m.action for m in markers] == [Marker.DELETEALL, Marker.ADD, Marker.ADD]  # none for "hidden"
    cube, text = markers[1:]
    assert (cube.type, cube.id, text.type, text.id, text.text) == (Marker.CUBE, 1, Marker.TEXT_VIEW_FACING, 1, "near")
    centroid, extent = true_centroid(*BOXES["near"])
    position = cube.pose.position
    assert [position.x, position.y, position.z] == pytest.approx(centroid.tolist(), abs=CENTROID_TOLERANCE)
    assert [cube.scale.x, cube.scale.y, cube.scale.z] == pytest.approx([extent[0], extent[1], 0.01], abs=1e-4)


# --- the core: depth matched to frames by stamp ----------------------------------------------------
@pytest.fixture(scope="module")
def predictor():
    return GaraPredictor.from_files(device="cpu")


def depth_msgs(t, depth=None, info_size=(WIDTH, HEIGHT)):
    header = Header(stamp=stamp(t), frame_id="camera_depth_optical")
    millimetres = np.round((synthetic_depth() if depth is None else depth) * 1000).astype(np.uint16)
    info = CameraInfo(header=header, width=info_size[0], height=info_size[1],
                      k=[CAMERA.fx, 0.0, CAMERA.cx, 0.0, CAMERA.fy, CAMERA.cy, 0.0, 0.0, 1.0])
    return array_to_image(millimetres, "16UC1", header), info


def test_core_gives_each_object_its_3d_from_the_depth_nearest_the_frame(predictor):
    r = Recorder(predictor, use_depth=True, stamp_tolerance=0.02)
    flat = np.full((HEIGHT, WIDTH), 3.0, np.float32)  # a wrong depth, 10 ms from frame 2: not the nearest
    for t, depth in ((1.0, flat), (1.99, flat), (2.001, None), (3.0, flat)):
        image, info = depth_msgs(t, depth)
        r.core.on_depth(image)
        r.core.on_camera_info(info)
    r.frame(2.0)  # scene(): the bright square is BOXES["near"]
    r.core.on_prompt(prompt(point_object("cup", 45, 30), box_object("tray", (5, 5, 90, 60)), t=2.0))
    output = r.core.process(r.jobs[-1], set())
    assert output.points.frame_id == "camera_depth_optical" and r.lines == []
    box, z = BOXES["near"]
    centroid, extent = true_centroid(box, z)
    cup = output.points.points[output.points.labels == 1]
    # the model's mask (IoU 0.91 with the square) may spill onto the wall: the depth band keeps the square's face
    assert np.abs(cup[:, 2] - z).max() <= 1e-3  # millimetre depth
    assert np.linalg.norm(output.points.centroids[0] - centroid) <= 0.02
    assert np.abs(output.points.extents[0] - extent).max() <= 0.05 and output.points.counts[0] >= 0.8 * 30 * 24
    result = conversions.result_msg(Header(), output.object_ids, output.extents, output.scores, 0, 0, 0,
                                    output.statuses, output.points)
    assert result.objects[0].depth_points == output.points.counts[0]
    assert result.objects[0].centroid.z == pytest.approx(output.points.centroids[0, 2])


@pytest.mark.parametrize("depth_at,info_size,line", [
    (None, (WIDTH, HEIGHT), "frame 2.000 s: no depth image within stamp_tolerance, no 3D for it"),
    (2.0, (640, 480), "frame 2.000 s: no 3D: camera info is 640 x 480, the colour image 96 x 64 (use a depth image "
                      "aligned to the colour one)"),
], ids=["no depth", "wrong size"])
def test_no_usable_depth_means_no_3d_and_one_line(predictor, depth_at, info_size, line):
    r = Recorder(predictor, use_depth=True)
    if depth_at is not None:
        image, info = depth_msgs(depth_at, info_size=info_size)
        r.core.on_depth(image)
        r.core.on_camera_info(info)
    r.frame(2.0)
    r.core.on_prompt(prompt(point_object("cup", 45, 30)))
    for _ in range(3):  # every frame without depth: no 3D, the masks as usual, one line per period
        output = r.core.process(r.jobs[-1], {"mask"})
        assert output.points is None and output.images["mask"].any()
    assert r.lines == [line]
    result = conversions.result_msg(Header(), output.object_ids, output.extents, output.scores, 0, 0, 0,
                                    output.statuses, output.points)
    assert result.objects[0].depth_points == 0 and result.objects[0].centroid.z == 0.0


# --- the node: depth topics in, ~/points and ~/markers out -----------------------------------------
def test_node_publishes_points_markers_and_3d_results_for_frames_with_depth(harness):
    h = harness(use_depth=True)
    depth, info = depth_msgs(2.0)
    h.send_depth(depth, info)
    h.send_image(scene(), t=2.0)
    h.send_prompt(prompt(point_object("cup", 45, 30), t=2.0))
    (result,) = h.results_after(0)
    assert wait_for(lambda: h.received["points"] and h.received["markers"])
    cloud, markers = h.received["points"][0], h.received["markers"][0]
    assert {m.header.frame_id for m in (cloud, *markers.markers)} == {"camera_depth_optical"}
    assert {(m.header.stamp.sec, m.header.stamp.nanosec) for m in (cloud, result)} == {(2, 0)}
    points = read_cloud(cloud)
    assert set(points["label"].tolist()) == {1} and np.abs(points["z"] - BOXES["near"][1]).max() <= 1e-3
    (obj,) = result.objects
    centroid, _ = true_centroid(*BOXES["near"])
    assert obj.depth_points == len(points)
    assert np.linalg.norm([obj.centroid.x - centroid[0], obj.centroid.y - centroid[1],
                           obj.centroid.z - centroid[2]]) <= 0.02
    assert [m.text for m in markers.markers if m.type == Marker.TEXT_VIEW_FACING] == ["cup"]
    h.send_image(scene(), t=3.0)  # a frame without depth: masks, but no 3D and no cloud
    h.send_prompt(prompt(point_object("cup", 45, 30), t=3.0))
    result = h.results_after(1)[-1]
    h.settle()
    assert result.objects[0].depth_points == 0 and len(h.received["points"]) == 1
    assert h.node.core.problems.counts() == {"no_depth": 1}
