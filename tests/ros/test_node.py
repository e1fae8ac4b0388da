"""segment_node end to end with real rclpy and the embedded tiny model."""

import array
import os
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PointStamped
from rclpy.parameter import Parameter
from sensor_msgs.msg import CompressedImage
from std_srvs.srv import SetBool, Trigger

from gara_ros.conversions import array_to_image, image_to_array
from gara_ros.segment_node import SegmentNode
from gara_ros.session import wait_for
from tests.ros.helpers import box_object, point_object, prompt, scene, stamp

QUIET = 0.5  # seconds to wait before asserting that nothing was published


def stamps(messages):
    return [m.header.stamp.sec + m.header.stamp.nanosec / 1e9 for m in messages]


def test_image_and_prompt_give_mask_labels_overlay_and_result(harness):
    h = harness()
    h.send_image(scene(), t=1.25)
    h.prompts.publish(prompt(point_object("cup", 45, 30), box_object("tray", (5, 5, 90, 60))))
    (result,) = h.results_after(0)
    assert wait_for(lambda: all(h.received[k] for k in ("mask", "labels", "overlay")))
    mask, labels, overlay = (h.received[k][0] for k in ("mask", "labels", "overlay"))
    assert stamps([result, mask, labels, overlay]) == [1.25] * 4
    assert {m.header.frame_id for m in (result, mask, labels, overlay)} == {"camera"}
    assert [(m.encoding, m.width, m.height) for m in (mask, labels, overlay)] == [
        ("mono8", 96, 64), ("mono16", 96, 64), ("bgr8", 96, 64)]
    mask, labels = image_to_array(mask)[..., 0], image_to_array(labels)[..., 0]
    assert set(np.unique(mask)) <= {0, 255} and set(np.unique(labels)) <= {0, 1, 2}
    assert np.array_equal(mask > 0, labels > 0)
    assert [(o.object_id, o.label) for o in result.objects] == [("cup", 1), ("tray", 2)]
    assert result.latency_ms > 0
    for obj in result.objects:
        assert np.isfinite(obj.iou_score)
        x1, y1, x2, y2 = obj.box
        assert 0 <= x1 <= x2 < 96 and 0 <= y1 <= y2 < 64 and obj.area <= 96 * 64


def test_outputs_without_subscribers_are_not_built(harness):
    h = harness()
    h.client.destroy_subscription(next(s for s in h.client.subscriptions if s.topic_name.endswith("/overlay")))
    assert wait_for(lambda: h.node.pub_overlay.get_subscription_count() == 0)
    h.send_image(scene(), t=1)
    h.prompts.publish(prompt(point_object("cup", 45, 30)))
    h.results_after(0)
    assert wait_for(lambda: h.received["mask"]) and h.received["overlay"] == []


def test_stamped_prompt_uses_the_matching_buffered_frame(harness):
    h = harness(stamp_tolerance=0.02)
    for t in (1.0, 2.0, 3.0):
        h.send_image(scene(), t=t)
    h.prompts.publish(prompt(point_object("a", 45, 30), t=2.01))
    assert stamps(h.results_after(0)) == [2.0]
    h.prompts.publish(prompt(point_object("b", 45, 30), t=0.0))
    assert stamps(h.results_after(1)) == [2.0, 3.0]
    h.prompts.publish(prompt(point_object("c", 45, 30), t=2.5))  # no frame within 20 ms: warning, nothing published
    time.sleep(QUIET)
    assert len(h.received["result"]) == 2


def test_persist_applies_prompts_to_new_frames_until_cleared(harness):
    h = harness(persist=True)
    h.send_image(scene(), t=1)
    h.prompts.publish(prompt(point_object("cup", 45, 30)))
    h.results_after(0)
    h.send_image(scene(), t=2)
    assert stamps(h.results_after(1)) == [1, 2]
    assert h.call(h.clear, Trigger.Request()).success
    h.send_image(scene(), t=3)
    time.sleep(QUIET)
    assert stamps(h.received["result"]) == [1, 2]


def test_without_persist_new_frames_are_not_segmented(harness):
    h = harness()
    h.send_image(scene(), t=1)
    h.prompts.publish(prompt(point_object("cup", 45, 30)))
    h.results_after(0)
    h.send_image(scene(), t=2)
    time.sleep(QUIET)
    assert stamps(h.received["result"]) == [1]


def test_enable_pauses_and_resumes_inference(harness):
    h = harness(persist=True)
    response = h.call(h.enable, SetBool.Request(data=False))
    assert response.success and response.message == "inference paused"
    h.send_image(scene(), t=1)
    h.prompts.publish(prompt(point_object("cup", 45, 30)))
    time.sleep(QUIET)
    assert h.received["result"] == []
    assert h.call(h.enable, SetBool.Request(data=True)).success
    h.send_image(scene(), t=2)
    assert stamps(h.results_after(0)) == [2]


def test_click_becomes_a_point_prompt_on_the_latest_frame(harness):
    h = harness()
    h.send_image(scene(), t=1)
    h.send_image(scene(), t=2)
    click = PointStamped()
    click.header.stamp = stamp(1)  # ignored: clicks go to the latest frame
    click.point.x, click.point.y = 45.0, 30.0
    h.clicks.publish(click)
    (result,) = h.results_after(0)
    assert stamps([result]) == [2] and [o.object_id for o in result.objects] == ["click"]


def bad_encoding():
    msg = array_to_image(scene(), "rgb8")
    msg.encoding = "yuv422"
    return msg


def short_data():
    msg = array_to_image(scene(), "rgb8")
    msg.data = msg.data[:-5]
    return msg


@pytest.mark.parametrize("make_bad", [bad_encoding, short_data])
def test_bad_frames_are_skipped_and_the_next_frame_is_served(harness, make_bad):
    h = harness()
    msg = make_bad()
    msg.header.stamp = stamp(1)
    h.send_image(None, t=1, msg=msg)
    h.prompts.publish(prompt(point_object("cup", 45, 30)))
    assert wait_for(lambda: h.node.stats["errors"] == 1)
    assert h.received["result"] == []
    h.send_image(scene(), t=2)
    h.prompts.publish(prompt(point_object("cup", 45, 30)))
    assert stamps(h.results_after(0)) == [2]


def test_model_failure_skips_the_frame_only(harness):
    h = harness()
    set_image, failures = h.node.predictor.set_image, [RuntimeError("CUDA out of memory")]

    def fails_once(image):
        if failures:
            raise failures.pop()
        set_image(image)

    h.node.predictor.set_image = fails_once
    h.send_image(scene(), t=1)
    h.prompts.publish(prompt(point_object("cup", 45, 30)))
    assert wait_for(lambda: h.node.stats["errors"] == 1)
    h.prompts.publish(prompt(point_object("cup", 45, 30)))
    assert stamps(h.results_after(0)) == [1]


def test_multimask_publishes_the_best_mask_per_object(harness):
    h = harness(multimask=True)
    h.send_image(scene(), t=1)
    h.prompts.publish(prompt(point_object("cup", 45, 30), box_object("tray", (5, 5, 90, 60))))
    (result,) = h.results_after(0)
    assert [o.object_id for o in result.objects] == ["cup", "tray"]
    assert wait_for(lambda: h.received["labels"])
    assert set(np.unique(image_to_array(h.received["labels"][0]))) <= {0, 1, 2}


def test_bad_prompts_are_rejected_and_good_objects_served(harness):
    h = harness(max_objects=2)
    h.send_image(scene(), t=1)
    h.prompts.publish(prompt(point_object("far", 500, 30)))  # only bad objects: nothing to do
    h.prompts.publish(prompt(*(point_object(str(i), 45, 30) for i in range(3))))  # too many objects
    h.prompts.publish(prompt(point_object("cup", 45, 30), point_object("nan", float("nan"), 3)))
    (result,) = h.results_after(0)
    assert [o.object_id for o in result.objects] == ["cup"]
    time.sleep(QUIET)
    assert len(h.received["result"]) == 1


def test_compressed_transport(harness):
    h = harness(image_transport="compressed")
    ok, png = cv2.imencode(".png", scene())
    compressed = CompressedImage(format="png", data=array.array("B", png.tobytes()))
    compressed.header.stamp = stamp(4)
    h.send_image(None, t=4, msg=compressed)
    h.prompts.publish(prompt(point_object("cup", 45, 30)))
    (result,) = h.results_after(0)
    assert stamps([result]) == [4]
    assert wait_for(lambda: h.received["mask"])
    assert (h.received["mask"][0].width, h.received["mask"][0].height) == (96, 64)


def test_newest_frame_only_under_a_burst(harness):
    h = harness(persist=True)
    set_image = h.node.predictor.set_image
    h.node.predictor.set_image = lambda image: (time.sleep(0.2), set_image(image))  # a slow model
    h.send_image(scene(), t=1)
    h.prompts.publish(prompt(point_object("cup", 45, 30)))
    h.results_after(0)
    for i in range(2, 22):
        h.send_image(scene(), t=i)
        time.sleep(0.01)
    assert wait_for(lambda: stamps(h.received["result"])[-1] == 21)
    time.sleep(QUIET)
    published = stamps(h.received["result"])
    assert published == sorted(published) and published[-1] == 21  # in order, ends with the newest
    assert len(published) <= 6 and h.node.slot.dropped >= 15  # frames were dropped, not queued


def test_diagnostics_report_rate_latency_drops_device_and_model(harness):
    h = harness(diagnostics_period=0.1)
    received = []
    h.client.create_subscription(DiagnosticArray, "/diagnostics", received.append, 10)
    h.send_image(scene(), t=1)
    h.prompts.publish(prompt(point_object("cup", 45, 30)))
    h.results_after(0)

    def latest():
        return {kv.key: kv.value for kv in received[-1].status[0].values} if received else {}

    assert wait_for(lambda: float(latest().get("latency_ms", 0)) > 0)
    values = latest()
    assert values["device"] == "cpu" and "SAM" in values["model"]
    assert values["frames_received"] == "1" and values["dropped_frames"] == "0" and float(values["rate_hz"]) >= 0
    assert float(values["model_ms"]) > 0 and float(values["node_overhead_ms"]) > 0
    stages = {"convert", "model", "encode", "publish"}
    assert set(h.node.stats["stage_ms"]) == set(h.node.stats["stage_cpu_ms"]) == stages


def test_missing_checkpoint_fails_with_one_line_naming_the_file(ros):
    with pytest.raises(FileNotFoundError, match="/nonexistent/sam.pth"):
        SegmentNode(parameter_overrides=[Parameter("checkpoint", value="/nonexistent/sam.pth")])
    run = subprocess.run(
        [sys.executable, "-c", "import sys; from gara_ros.segment_node import main; sys.exit(main())",
         "--ros-args", "-p", "checkpoint:=/nonexistent/sam.pth"],
        capture_output=True, text=True, timeout=60, env=os.environ, cwd=os.getcwd())
    assert run.returncode == 1
    lines = [line for line in run.stderr.splitlines() if "/nonexistent/sam.pth" in line]
    assert len(lines) == 1 and "cannot start" in lines[0], run.stderr
