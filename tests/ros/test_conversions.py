"""Image and prompt conversions, overlay and result building: pure functions, no ROS graph."""

import array

import cv2
import numpy as np
import pytest
from builtin_interfaces.msg import Time
from sensor_msgs.msg import CompressedImage

from gara_ros import conversions
from gara_ros.conversions import ConversionError, array_to_image, compressed_to_rgb, image_to_array, image_to_rgb
from gara_ros.overlay import PALETTE, draw_overlay
from tests.ros.helpers import box_object, point_object, prompt, scene, stamp

RGB = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
GRAY = RGB[..., 0]


def as_rgb(gray):
    return np.repeat(gray[..., None], 3, axis=2)


# encoding -> (pixels in that encoding, expected RGB after decoding)
CASES = {
    "rgb8": (RGB, RGB),
    "bgr8": (RGB[..., ::-1].copy(), RGB),
    "rgba8": (cv2.cvtColor(RGB, cv2.COLOR_RGB2RGBA), RGB),
    "bgra8": (cv2.cvtColor(RGB, cv2.COLOR_RGB2BGRA), RGB),
    "mono8": (GRAY, as_rgb(GRAY)),
    # 16-bit: min-max stretched per frame
    "mono16": (np.array([[0, 1000], [2000, 4000]], np.uint16), as_rgb(np.array([[0, 64], [128, 255]], np.uint8))),
    "16UC1": (np.array([[500, 500], [500, 700]], np.uint16), as_rgb(np.array([[0, 0], [0, 255]], np.uint8))),
}


def padded(msg, extra):
    """The same image with `extra` junk bytes after every row."""
    rows = np.frombuffer(msg.data, np.uint8).reshape(msg.height, msg.step)
    junk = np.full((msg.height, extra), 77, np.uint8)
    msg.data = array.array("B", np.hstack([rows, junk]).tobytes())
    msg.step += extra
    return msg


def big_endian(msg):
    """The same 16-bit image with big-endian pixel data."""
    pixels = image_to_array(msg)
    msg.data = array.array("B", pixels.astype(">u2").tobytes())
    msg.is_bigendian = 1
    return msg


@pytest.mark.parametrize("encoding", CASES)
@pytest.mark.parametrize("extra", [0, 3, 16])
def test_image_round_trip(encoding, extra):
    pixels, expected = CASES[encoding]
    msg = padded(array_to_image(pixels, encoding), extra) if extra else array_to_image(pixels, encoding)
    assert (msg.encoding, msg.height, msg.width) == (encoding, pixels.shape[0], pixels.shape[1])
    assert np.array_equal(image_to_array(msg).reshape(pixels.shape), pixels)
    rgb = image_to_rgb(msg)
    assert rgb.dtype == np.uint8 and rgb.flags["C_CONTIGUOUS"]
    assert np.array_equal(rgb, expected)


@pytest.mark.parametrize("encoding", ["mono16", "16UC1"])
def test_big_endian_16_bit(encoding):
    pixels, expected = CASES[encoding]
    msg = padded(big_endian(array_to_image(pixels, encoding)), 2)
    assert np.array_equal(image_to_rgb(msg), expected)


def test_unsupported_encoding_names_it():
    msg = array_to_image(GRAY, "mono8")
    msg.encoding = "yuv422"
    with pytest.raises(ConversionError, match="'yuv422'"):
        image_to_rgb(msg)


@pytest.mark.parametrize("change", [dict(height=6), dict(step=6), dict(width=8, step=8)])
def test_size_mismatch_is_an_error(change):
    msg = array_to_image(GRAY, "mono8")
    for field, value in change.items():
        setattr(msg, field, value)
    with pytest.raises(ConversionError, match=r"height\*step"):
        image_to_rgb(msg)


def test_empty_image_is_an_error():
    with pytest.raises(ConversionError, match="empty"):
        image_to_rgb(array_to_image(np.zeros((0, 4), np.uint8), "mono8"))


@pytest.mark.parametrize("fmt,ext,tolerance", [("png", ".png", 0), ("jpeg", ".jpg", 3)])
def test_compressed(fmt, ext, tolerance):
    """png is lossless; jpeg is close on average."""
    rgb = scene()
    ok, data = cv2.imencode(ext, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    msg = CompressedImage(format=fmt, data=array.array("B", data.tobytes()))
    decoded = compressed_to_rgb(msg)
    assert decoded.shape == rgb.shape
    assert np.abs(decoded.astype(int) - rgb).mean() <= tolerance


def jpeg_declaring(width: int, height: int) -> bytes:
    """A valid 8 x 8 jpeg whose frame header (SOF0) declares width x height pixels."""
    data = bytearray(cv2.imencode(".jpg", np.zeros((8, 8, 3), np.uint8))[1].tobytes())
    sof = data.index(b"\xff\xc0")
    data[sof + 5:sof + 9] = height.to_bytes(2, "big") + width.to_bytes(2, "big")
    return bytes(data)


@pytest.mark.parametrize("data,reason", [
    (b"not a jpeg", "cannot decode compressed image"),
    (b"", "has no data"),
    (jpeg_declaring(9000, 8000), "declares 9000 x 8000 pixels, more than 67108864"),  # 631 bytes
    (jpeg_declaring(30000, 30000), "cannot decode"),  # past Pillow's own bomb limit
], ids=["corrupt", "empty", "huge", "huger"])
def test_unusable_compressed_is_an_error_naming_the_format(data, reason):
    with pytest.raises(ConversionError, match=reason) as error:
        compressed_to_rgb(CompressedImage(format="jpeg", data=array.array("B", data)))
    assert "'jpeg'" in str(error.value)


def test_declared_size_within_the_limit_is_decoded():
    assert compressed_to_rgb(CompressedImage(format="jpeg", data=array.array("B", jpeg_declaring(40, 30)))).shape == (
        30, 40, 3)


def test_outputs_and_wrong_layout():
    labels = np.array([[0, 1], [2, 300]], np.uint16)
    msg = array_to_image(labels, "mono16")
    assert (msg.step, msg.is_bigendian, len(msg.data)) == (4, 0, 8)
    assert np.array_equal(image_to_array(msg)[..., 0], labels)
    with pytest.raises(ConversionError, match="mono8 needs an HxW uint8"):
        array_to_image(labels, "mono8")
    with pytest.raises(ConversionError, match="bgr8 needs an HxWx3"):
        array_to_image(GRAY, "bgr8")


# --- stamps and prompts ---------------------------------------------------------------------------
def test_stamp_to_ns_and_negative_stamps():
    assert conversions.stamp_to_ns(stamp(3.25)) == 3_250_000_000
    assert conversions.stamp_to_ns(Time(sec=0, nanosec=7)) == 7
    with pytest.raises(ConversionError, match="-1 s .* negative"):
        conversions.stamp_to_ns(Time(sec=-1, nanosec=5))


def test_prompts_are_read_field_by_field_without_checks():
    both = point_object("mug", 5, 5)
    both.has_box, both.box = True, [0.0, 0.0, 20.0, 20.0]
    far = point_object("far", 500, -3)  # outside any image here: checked later, against the decoded frame
    ignored_box = point_object("cup", 10, 20)
    ignored_box.box = [1.0, 2.0, 3.0, 4.0]  # has_box is false
    prompts = conversions.prompts_from_msg(prompt(ignored_box, box_object("box", (1, 2, 30, 40)), both, far))
    assert [p.object_id for p in prompts] == ["cup", "box", "mug", "far"]
    assert prompts[0].points.tolist() == [[10, 20]] and prompts[0].labels.tolist() == [1] and prompts[0].box is None
    assert prompts[1].points.shape == (0, 2) and prompts[1].labels.shape == (0,)
    assert prompts[1].box.tolist() == [1, 2, 30, 40]
    assert prompts[2].box.tolist() == [0, 0, 20, 20] and prompts[3].points.tolist() == [[500, -3]]


# --- results and overlay ----------------------------------------------------------------------
MASKS = np.zeros((2, 6, 8), bool)
MASKS[0, 1:4, 2:5] = True
MASKS[1, 3:6, 4:8] = True


def test_best_masks_picks_highest_score():
    masks = np.stack([np.stack([MASKS[0], MASKS[1], ~MASKS[0]])] * 2)
    masks[1] = masks[1, ::-1]
    scores = np.array([[0.1, 0.9, 0.3], [0.2, 0.1, 0.8]], np.float32)
    best, best_scores = conversions.best_masks(masks, scores)
    assert np.array_equal(best, np.stack([MASKS[1], MASKS[0]]))
    assert best_scores.tolist() == pytest.approx([0.9, 0.8])
    single, _ = conversions.best_masks(masks[:, :1], scores[:, :1])
    assert np.array_equal(single, masks[:, 0]) and np.shares_memory(single, masks)  # C = 1: a view, no copy


def test_labels_box_union_and_result():
    assert conversions.mask_box_area(MASKS[0]) == ((2, 1, 4, 3), 9)
    assert conversions.mask_box_area(np.zeros((3, 3), bool)) == ((0, 0, 0, 0), 0)
    extents = [conversions.mask_box_area(mask) for mask in MASKS]
    labels = conversions.labels_from_masks(MASKS, extents)
    assert labels.dtype == np.uint16 and labels[2, 3] == 1 and labels[3, 4] == 2 and labels[0, 0] == 0
    empty_first = np.stack([np.zeros_like(MASKS[0]), MASKS[1]])  # ids follow object order, empty masks included
    empty_extents = [conversions.mask_box_area(mask) for mask in empty_first]
    assert set(np.unique(conversions.labels_from_masks(empty_first, empty_extents))) == {0, 2}
    header = prompt(t=3.5).header
    union = conversions.mask_union(MASKS, extents)
    assert union.dtype == np.uint8 and np.array_equal(union, MASKS.any(axis=0) * 255)
    msg = conversions.result_msg(header, ["a", "b"], extents, np.array([0.5, 0.25]), 0.75, 3.0, 12.0)
    assert msg.header == header and msg.latency_ms == 12.0
    assert (msg.high_rank_share, msg.mean_active_components) == (0.75, 3.0)  # once per image
    a, b = msg.objects
    assert (a.object_id, a.label, a.iou_score, list(a.box), a.area) == ("a", 1, 0.5, [2, 1, 4, 3], 9)
    assert (b.object_id, b.label, list(b.box), b.area) == ("b", 2, [4, 3, 7, 5], 12)


def test_overlay_blends_masks_and_keeps_background():
    rgb = scene(width=80, height=60)
    masks = np.zeros((1, 60, 80), bool)
    masks[0, 20:50, 10:60] = True
    bgr = draw_overlay(rgb, masks, ["cup"], np.array([0.9]))
    assert bgr.shape == rgb.shape and bgr.dtype == np.uint8
    assert np.array_equal(bgr[2, 78], rgb[2, 78, ::-1])  # far from the mask and its label
    expected = rgb[35, 35, ::-1] * 0.5 + PALETTE[0] * 0.5
    assert np.abs(bgr[35, 35] - expected).max() <= 1  # OpenCV rounds each step


def test_node_and_replay_build_byte_identical_messages():
    """Every output builder gives the same message from ROS 2's classes (the node) as from the rosbags type store's
    (the replay), whose missing fields bag.StoreConstructor fills: compared as CDR bytes, so no field, default or
    nested, of one side differs from the other's."""
    from rclpy.serialization import serialize_message

    from gara_ros.bag import message_types, typestore
    from gara_ros.depth import ObjectPoints

    points = ObjectPoints("camera_optical", np.array([[0.1, -0.2, 1.0], [0.3, 0.1, 1.5]], np.float32),
                          np.array([1, 2], np.uint32), np.array([[0.1, -0.2, 1.0], [0.3, 0.1, 1.5]]),
                          np.array([[0.2, 0.1, 0.0], [0.4, 0.3, 0.1]]), np.array([1, 1]))
    extents = [conversions.mask_box_area(mask) for mask in MASKS]
    store, ros = typestore(), conversions.ros_message_types()

    def build(types):
        header = types.header(stamp=stamp(3.5), frame_id="camera") if types is ros else types.header(
            stamp=typestore().types["builtin_interfaces/msg/Time"](sec=3, nanosec=500_000_000), frame_id="camera")
        return {
            "sensor_msgs/msg/Image": array_to_image(GRAY, "mono8", header, types),
            "gara_ros/msg/SegmentResult": conversions.result_msg(header, ["a", "b"], extents, np.array([0.5, 0.25]),
                                                                 0.75, 3.0, 12.0, [0, 2], points, types),
            "sensor_msgs/msg/PointCloud2": conversions.cloud_msg(header, points, types),
            "visualization_msgs/msg/MarkerArray": conversions.markers_msg(header, ["a", "b"], points, types),
        }

    for (msgtype, node_msg), replay_msg in zip(build(ros).items(), build(message_types(store)).values(), strict=True):
        # through rosbags once, so that CDR's padding bytes (left uninitialised by rclpy) are zero on both sides
        node_bytes = store.serialize_cdr(store.deserialize_cdr(serialize_message(node_msg), msgtype), msgtype)
        assert bytes(node_bytes) == bytes(store.serialize_cdr(replay_msg, msgtype)), msgtype
