"""segment_node end to end with real rclpy and the embedded tiny model, node and client in this process."""

import array
import time

import cv2
import numpy as np
import pytest
import torch
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from geometry_msgs.msg import PointStamped
from rclpy.qos import HistoryPolicy, ReliabilityPolicy
from sensor_msgs.msg import CompressedImage
from std_srvs.srv import SetBool, Trigger

from gara_model.predictor import GaraPredictor
from gara_model.prompts import ObjectPrompt
from gara_ros.conversions import array_to_image, image_to_array, mask_box_area
from tests.ros.harness import wait_for
from tests.ros.helpers import box_object, point_object, prompt, scene, stamp

SQUARE = (30, 20, 60, 44)  # XYXY, exclusive end: scene()'s object
TRUE_MASK = np.zeros((64, 96), bool)
TRUE_MASK[SQUARE[1]:SQUARE[3], SQUARE[0]:SQUARE[2]] = True
# The embedded tiny model on scene() (measured): mask IoU 0.97 from the point (45, 30), 0.91 from the box
# (5, 5, 90, 60). Both masks carry a few specks in the flat dark background (10 and 57 pixels), so an object's box
# is checked against the model's own mask, its IoU against the square.
MIN_IOU = 0.8
CUP, TRAY = ObjectPrompt("cup", points=[(45, 30)], labels=[1]), ObjectPrompt("tray", box=(5, 5, 90, 60))


@pytest.fixture(scope="module")
def model():
    """The embedded model the node loads, outside the node: what each object's own mask on scene() is."""
    return GaraPredictor.from_files(device="cpu")


def own_mask(model, obj: ObjectPrompt) -> np.ndarray:
    model.set_image(scene())
    return model.predict([obj]).masks[0, 0]


def stamps(messages):
    return [m.header.stamp.sec + m.header.stamp.nanosec / 1e9 for m in messages]


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


def test_image_and_prompt_give_masks_of_the_object_with_its_header(harness, model):
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
    assert iou(mask > 0, TRUE_MASK) >= MIN_IOU  # the mask covers the object, and little else
    assert [(o.object_id, o.label) for o in result.objects] == [("cup", 1), ("tray", 2)]
    assert result.latency_ms > 0 and 0 < result.mean_active_components and 0 <= result.high_rank_share <= 1
    for obj, given in zip(result.objects, (CUP, TRAY)):  # each object's own mask, before the labels image layers them
        assert np.isfinite(obj.iou_score)
        own = own_mask(model, given)
        assert iou(own, TRUE_MASK) >= MIN_IOU
        (box, area) = mask_box_area(own)
        assert tuple(obj.box) == box and obj.area == area, obj.object_id


def test_images_are_subscribed_best_effort_newest_only(harness):
    h = harness()
    (images,) = [s for s in h.node.subscriptions if s.topic_name == "/image"]
    assert (images.qos_profile.reliability, images.qos_profile.history, images.qos_profile.depth) == (
        ReliabilityPolicy.BEST_EFFORT, HistoryPolicy.KEEP_LAST, 1)


def test_outputs_without_subscribers_are_not_built(harness):
    h = harness()
    h.client.destroy_subscription(next(s for s in h.client.subscriptions if s.topic_name.endswith("/overlay")))
    assert wait_for(lambda: h.node.output_publishers["overlay"].get_subscription_count() == 0)
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
    h.send_prompt(prompt(point_object("c", 45, 30), t=2.5))  # no frame within 20 ms: warning, nothing published
    h.settle()
    assert h.node.core.problems.counts() == {"no_frame": 1} and len(h.received["result"]) == 2


def test_persist_applies_prompts_to_new_frames_until_cleared(harness):
    h = harness(persist=True)
    h.send_image(scene(), t=1)
    h.prompts.publish(prompt(point_object("cup", 45, 30)))
    h.results_after(0)
    h.send_image(scene(), t=2)
    assert stamps(h.results_after(1)) == [1, 2]
    assert h.call(h.clear, Trigger.Request()).success
    h.send_image(scene(), t=3)
    h.settle()
    assert stamps(h.received["result"]) == [1, 2] and h.stats().processed == 2


def test_without_persist_new_frames_are_not_segmented(harness):
    h = harness()
    h.send_image(scene(), t=1)
    h.prompts.publish(prompt(point_object("cup", 45, 30)))
    h.results_after(0)
    h.send_image(scene(), t=2)
    h.settle()
    assert stamps(h.received["result"]) == [1] and h.stats().processed == 1


def test_enable_pauses_and_resumes_inference(harness):
    h = harness(persist=True)
    response = h.call(h.enable, SetBool.Request(data=False))
    assert response.success and response.message == "inference paused"
    h.send_image(scene(), t=1)
    h.send_prompt(prompt(point_object("cup", 45, 30)))
    h.settle()
    assert h.received["result"] == [] and h.stats().processed == 0
    assert h.call(h.enable, SetBool.Request(data=True)).success
    h.send_image(scene(), t=2)
    assert stamps(h.results_after(0)) == [2]


def test_click_becomes_a_point_prompt_on_the_latest_frame(harness, model):
    h = harness()
    h.send_image(scene(), t=1)
    h.send_image(scene(), t=2)
    click = PointStamped()
    click.header.stamp = stamp(1)  # ignored: clicks go to the latest frame
    click.point.x, click.point.y = 45.0, 30.0
    h.clicks.publish(click)
    (result,) = h.results_after(0)
    assert stamps([result]) == [2] and [o.object_id for o in result.objects] == ["click"]
    own = own_mask(model, CUP)  # the click's point
    assert iou(own, TRUE_MASK) >= MIN_IOU and tuple(result.objects[0].box) == mask_box_area(own)[0]


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
    assert wait_for(lambda: h.stats().failed == 1)
    h.settle()
    assert h.received["result"] == [] and h.node.core.problems.counts() == {"image": 1}
    h.send_image(scene(), t=2)
    h.prompts.publish(prompt(point_object("cup", 45, 30)))
    assert stamps(h.results_after(0)) == [2]


def test_model_failure_skips_the_frame_only(harness):
    h = harness()
    set_image, failures = h.node.core.predictor.set_image, [RuntimeError("CUDA out of memory")]

    def fails_once(image):
        if failures:
            raise failures.pop()
        set_image(image)

    h.node.core.predictor.set_image = fails_once
    h.send_image(scene(), t=1)
    h.prompts.publish(prompt(point_object("cup", 45, 30)))
    assert wait_for(lambda: h.stats().failed == 1)
    assert h.node.core.problems.counts() == {"inference": 1}
    h.prompts.publish(prompt(point_object("cup", 45, 30)))
    assert stamps(h.results_after(0)) == [1]


def test_an_exception_in_a_callback_is_logged_and_the_node_keeps_serving(harness):
    h = harness()
    handle, failures = h.node.core.prompt, [KeyError("a bug")]

    def fails_once(prompts, stamp_ns):
        if failures:
            raise failures.pop()
        handle(prompts, stamp_ns)

    h.node.core.prompt = fails_once  # called by the core's on_prompt, which the subscription calls through its guard
    h.send_image(scene(), t=1)
    h.prompts.publish(prompt(point_object("cup", 45, 30)))
    assert wait_for(lambda: h.node.core.problems.counts().get("internal") == 1)
    assert h.thread.is_alive()  # the executor still spins
    h.prompts.publish(prompt(point_object("cup", 45, 30)))
    assert stamps(h.results_after(0)) == [1]


def test_multimask_publishes_the_highest_scoring_mask_per_object(harness):
    h = harness(multimask=True)
    # Give the multimask outputs clearly ranked scores, the second of the three the highest (the tiny model's
    # multimask scores are untrained and nearly equal): offsets on the IoU head's bias, per output.
    head = h.node.core.predictor.model.mask_decoder.iou_prediction_head.layers[-1]
    with torch.no_grad():
        head.bias += torch.tensor([0.0, 0.1, 0.9, 0.5])  # output 0 is the single mask; 1..3 the multimask ones
    h.send_image(scene(), t=1)
    objects = [point_object("cup", 45, 30), point_object("corner", 10, 10)]
    h.prompts.publish(prompt(*objects))
    (result,) = h.results_after(0)
    assert wait_for(lambda: h.received["labels"])
    labels = image_to_array(h.received["labels"][0])[..., 0]
    predictor = h.node.core.predictor
    predictor.set_image(scene())
    prediction = predictor.predict([ObjectPrompt(o.object_id, np.array([[p.x, p.y] for p in o.points]),
                                                 np.array(o.labels)) for o in objects], multimask_output=True)
    assert (prediction.iou_scores.argmax(axis=1) == 1).all()
    assert [o.object_id for o in result.objects] == ["cup", "corner"]
    for label, (masks, scores, obj) in enumerate(zip(prediction.masks, prediction.iou_scores, result.objects), 1):
        assert obj.iou_score == pytest.approx(scores.max())
        assert not np.array_equal(masks[1], masks[0]) and not np.array_equal(masks[1], masks[2])
        assert obj.area == masks[1].sum()  # the best mask's area, not another's
    # the labels image layers the objects: the later one is wholly on top
    assert np.array_equal(labels == 2, prediction.masks[1, 1])
    assert np.array_equal(labels == 1, prediction.masks[0, 1] & ~prediction.masks[1, 1])


def test_bad_prompts_are_rejected_and_good_objects_served(harness):
    h = harness(max_objects=2)
    h.send_image(scene(), t=1)
    h.send_prompt(prompt(point_object("far", 500, 30)))  # only bad objects: nothing to do
    h.settle()
    h.send_prompt(prompt(*(point_object(str(i), 45, 30) for i in range(3))))  # too many objects
    assert h.received["result"] == [] and h.node.core.problems.counts() == {"object": 1, "prompt": 1}
    h.prompts.publish(prompt(point_object("cup", 45, 30), point_object("nan", float("nan"), 3)))
    (result,) = h.results_after(0)
    assert [o.object_id for o in result.objects] == ["cup"]
    h.settle()
    assert len(h.received["result"]) == 1 and h.node.core.problems.counts()["object"] == 2


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


def test_compressed_frames_are_decoded_once_in_the_worker(harness):
    h = harness(image_transport="compressed")
    decode, decoded = h.node.core.decode, []
    h.node.core.decode = lambda msg: (decoded.append(msg.header.stamp.sec), decode(msg))[1]
    compressed = CompressedImage(format="png", data=array.array("B", cv2.imencode(".png", scene())[1].tobytes()))
    compressed.header.stamp = stamp(4)
    h.send_image(None, t=4, msg=compressed)
    h.prompts.publish(prompt(point_object("cup", 45, 30), box_object("tray", (5, 5, 90, 60))))
    h.results_after(0)
    assert decoded == [4]


def test_newest_frame_only_under_a_burst(harness):
    h = harness(persist=True)
    set_image = h.node.core.predictor.set_image
    h.node.core.predictor.set_image = lambda image: (time.sleep(0.2), set_image(image))  # a slow model
    h.send_image(scene(), t=1)
    h.prompts.publish(prompt(point_object("cup", 45, 30)))
    h.results_after(0)
    for i in range(2, 22):
        h.send_image(scene(), t=i)
        time.sleep(0.01)
    assert wait_for(lambda: stamps(h.received["result"])[-1] == 21)
    h.settle()
    assert wait_for(lambda: len(h.received["result"]) == h.stats().processed)
    published = stamps(h.received["result"])
    assert published == sorted(published) and published[-1] == 21  # in order, ends with the newest
    assert len(published) <= 6 and h.node.slot.dropped >= 15  # frames were dropped, not queued


def diagnostics_of(h, received):
    h.client.create_subscription(DiagnosticArray, "/diagnostics", received.append, 10)

    def latest():
        return {kv.key: kv.value for kv in received[-1].status[0].values} if received else {}

    return latest


def test_diagnostics_report_rate_latency_drops_device_and_model(harness):
    h = harness(diagnostics_period=0.1)
    received = []
    latest = diagnostics_of(h, received)
    h.send_image(scene(), t=1)
    h.prompts.publish(prompt(point_object("cup", 45, 30)))
    h.results_after(0)
    assert wait_for(lambda: float(latest().get("latency_ms", 0)) > 0)
    values = latest()
    assert values["device"] == "cpu" and "SAM" in values["model"]
    assert values["frames_received"] == "1" and values["dropped_frames"] == "0" and float(values["rate_hz"]) >= 0
    assert values["prompts"] == "1" and values["frame_errors"] == "0"
    assert float(values["model_ms"]) > 0 and float(values["node_overhead_ms"]) > 0
    stages = {"convert", "model", "encode", "publish"}
    assert set(h.stats().stage_ms) == set(h.stats().stage_cpu_ms) == stages


def test_diagnostics_warn_when_most_camera_frames_are_lost(harness):
    h = harness(diagnostics_period=0.1)
    received = []
    diagnostics_of(h, received)
    for t in (1.0, 1.1, 1.9):  # a 10 Hz camera whose frames 1.2 to 1.8 never arrived
        h.send_image(scene(), t=t)

    def total(key):
        return sum(int(kv.value) for m in list(received) for kv in m.status[0].values if kv.key == key)

    assert wait_for(lambda: total("period_frames_received") == 3)
    assert total("period_frames_expected") == 10
    warnings = [m.status[0] for m in received if m.status[0].level == DiagnosticStatus.WARN]
    assert warnings and warnings[0].message == "most frames lost in transport"
    assert h.node.core.problems.counts()["transport"] >= 1
