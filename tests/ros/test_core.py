"""gara_ros.core without a ROS graph: object checks, the problem log, prompts and persist, one job, diagnostics."""

import os
from dataclasses import replace
import subprocess
import sys

import numpy as np
import pytest
from builtin_interfaces.msg import Time
from geometry_msgs.msg import Point
from std_msgs.msg import Header

from gara_model.predictor import GaraPredictor
from gara_ros import conversions
from gara_ros.conversions import array_to_image
from gara_ros.msg import SegmentPrompt
from gara_ros.core import (
    CLICK_ID, OUTPUT_ENCODINGS, TRANSPORT_ADVICE, ProblemLog, check_objects, object_names,
)
from tests.ros.helpers import SETTINGS, Recorder, box_object, point_object, prompt, scene


ROS_PACKAGES = ("rclpy", "sensor_msgs", "std_msgs", "builtin_interfaces", "geometry_msgs", "gara_ros.msg")


def test_core_runs_without_ros():
    """Neither rclpy nor any ROS message package is loaded by the core (the replay runs without ROS)."""
    run = subprocess.run([sys.executable, "-c", f"import sys, gara_ros.core; print(sorted(m for m in sys.modules "
                          f"if m.split('.')[0] in {ROS_PACKAGES} or m.startswith('gara_ros.msg')))"],
                         capture_output=True, text=True, timeout=60, env=os.environ)
    assert run.returncode == 0 and run.stdout.strip() == "[]", run.stderr + run.stdout


# --- object checks ---------------------------------------------------------------------------------
GOOD = {
    "points": point_object("cup", 10, 20),
    "box": box_object("box", (1, 2, 30, 40)),
    "both": point_object("mug", 5, 5),
}
GOOD["both"].has_box, GOOD["both"].box = True, [0.0, 0.0, 20.0, 20.0]


def checked(*objects, size=(64, 96), max_points=4):
    return check_objects(conversions.prompts_from_msg(prompt(*objects)), size, max_points)


def test_valid_objects_pass_with_boxes_clipped_to_the_image():
    wide = box_object("wide", (-10, 5, 200, 50))
    prompts, errors = checked(*GOOD.values(), wide)
    assert errors == []
    assert [p.object_id for p in prompts] == ["cup", "box", "mug", "wide"]
    assert prompts[0].points.tolist() == [[10, 20]] and prompts[0].labels.tolist() == [1]
    assert prompts[3].box.tolist() == [0, 5, 96, 50]


def bad(object_id, **fields):
    obj = point_object(object_id, 10, 10)
    for name, value in fields.items():
        setattr(obj, name, value)
    return obj


BAD = [
    (bad("far", points=[Point(x=200.0, y=10.0)]), "outside the 96 x 64 image"),
    (bad("neg", points=[Point(x=-1.0, y=10.0)]), "outside"),
    (bad("nan", points=[Point(x=float("nan"), y=10.0)]), "NaN"),
    (bad("inf", points=[Point(x=10.0, y=float("inf"))]), "infinity"),
    (bad("empty", points=[], labels=[]), "empty prompt"),
    (bad("flipped", points=[], labels=[], has_box=True, box=[30.0, 5.0, 10.0, 20.0]), "x2 <= x1"),
    (bad("nanbox", points=[], labels=[], has_box=True, box=[float("nan"), 5.0, 10.0, 20.0]), "finite"),
    (bad("boxout", points=[], labels=[], has_box=True, box=[100.0, 5.0, 120.0, 20.0]), "lies outside"),
    (bad("count", labels=[1, 0]), "1 points but 2 labels"),
    (bad("many", points=[Point(x=1.0, y=1.0)] * 5, labels=[1] * 5), "5 points, more than max_points=4"),
    (bad("label", labels=[2]), "must be 1 (foreground) or 0"),
    (bad(""), "object #0: object id '' is empty"),
]


@pytest.mark.parametrize("obj,reason", BAD, ids=[o.object_id or "noid" for o, _ in BAD])
def test_bad_object_is_rejected_by_name(obj, reason):
    prompts, errors = checked(obj, GOOD["points"])
    assert [p.object_id for p in prompts] == ["cup"]
    assert len(errors) == 1 and reason in errors[0] and repr(obj.object_id) in errors[0]


def test_duplicate_id_is_rejected():
    prompts, errors = checked(GOOD["points"], GOOD["points"])
    assert [p.object_id for p in prompts] == ["cup"]
    assert errors == ["object #1: object id 'cup' is empty or used twice"]


# --- problem log -----------------------------------------------------------------------------------
def test_problem_log_writes_one_short_line_per_kind_per_period_and_counts_all():
    lines, now = [], [0.0]
    log = ProblemLog(lambda level, line: lines.append((level, line)), period=5.0, max_chars=80, clock=lambda: now[0])
    for i in range(3):
        log.report("image", f"bad image {i}")
    log.report("no_frame", "no frame")
    assert lines == [("error", "bad image 0"), ("warning", "no frame")]
    now[0] = 4.9
    log.report("image", "bad image 3")
    now[0] = 5.0
    log.report("image", "bad image 4\nwith a second line")
    assert lines[-1] == ("error", "(3 more image problems not shown) bad image 4 with a second line")
    log.report("prompt", "x" * 500)
    assert len(lines[-1][1]) == 80 and lines[-1][1].endswith("...")
    assert len(lines) == 4 and log.counts() == {"image": 5, "no_frame": 1, "prompt": 1}


@pytest.mark.parametrize("name, value", [("stamp_tolerance", -0.1), ("stamp_tolerance", float("nan")),
                                         ("buffer_size", 0), ("max_objects", 0), ("max_points", -1),
                                         ("mask_threshold", float("inf"))])
def test_settings_refuse_bad_values_naming_the_field(name, value):
    with pytest.raises(ValueError, match=f"^{name} must be .*, got {value}$"):
        replace(SETTINGS, **{name: value})


def test_object_names_lists_the_first_few_shortened():
    assert object_names([f"id{i}" for i in range(1000)]) == "'id0', 'id1', 'id2', 'id3' and 996 more"
    assert object_names(["x" * 100, "b"]) == f"'{'x' * 24}...', 'b'"


# --- prompts, frames, persist ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def predictor():
    return GaraPredictor.from_files(device="cpu")


def test_stamped_prompt_picks_the_nearest_frame_within_tolerance(predictor):
    r = Recorder(predictor, stamp_tolerance=0.02)
    for t in (1.0, 2.0, 3.0):
        r.frame(t)
    assert r.jobs == []  # frames alone make no job without persisted prompts
    r.core.on_prompt(prompt(point_object("a", 45, 30), t=2.01))
    r.core.on_prompt(prompt(point_object("b", 45, 30), t=0))  # zero stamp: the latest frame
    r.core.on_prompt(prompt(point_object("c", 45, 30), t=2.5))
    assert [(j.frame.stamp_ns, j.prompts[0].object_id) for j in r.jobs] == [(2_000_000_000, "a"), (3_000_000_000, "b")]
    assert r.lines == ["prompt for 'c' ignored: no buffered image within stamp_tolerance of its stamp 2.500 s"]
    assert r.core.stats().prompts == 3 and r.core.problems.counts() == {"no_frame": 1}


@pytest.mark.parametrize("msg,line", [
    (prompt(), "prompt with no objects ignored"),
    (prompt(*(point_object(f"o{i}", 1, 1) for i in range(1000))),
     "prompt with 1000 objects ('o0', 'o1', 'o2', 'o3' and 996 more) ignored: more than max_objects=16"),
    (SegmentPrompt(header=Header(stamp=Time(sec=-1)), objects=[point_object("neg", 1, 1)]),
     "prompt for 'neg' ignored: stamp -1 s + 0 ns is negative"),
], ids=["empty", "1000 objects", "negative stamp"])
def test_whole_prompt_problems_are_one_short_line(predictor, msg, line):
    r = Recorder(predictor)
    r.frame(1)
    r.core.on_prompt(msg)
    assert r.jobs == [] and r.lines == [line]
    assert r.core.problems.counts() == {"prompt": 1} and r.core.stats().prompts == 1


def test_prompt_before_any_image(predictor):
    r = Recorder(predictor)
    r.core.on_prompt(prompt(point_object("early", 1, 1)))
    assert r.jobs == [] and r.lines == ["prompt for 'early' ignored: no image received yet"]


def test_negative_image_stamp_is_reported_and_not_buffered(predictor):
    r = Recorder(predictor)
    msg = array_to_image(scene(), "rgb8", Header(stamp=Time(sec=-1, nanosec=0)))
    r.core.on_frame(msg)
    assert r.core.frames.latest() is None and r.core.stats().received == 0
    assert r.lines == ["image ignored: stamp -1 s + 0 ns is negative"]


def test_persisted_prompts_follow_new_frames_until_clear_or_disable(predictor):
    r = Recorder(predictor, persist=True)
    r.frame(1)
    r.core.on_prompt(prompt(point_object("cup", 45, 30)))
    r.frame(2)
    r.core.enabled = False
    r.frame(3)
    r.core.on_prompt(prompt(point_object("mug", 45, 30)))  # persisted while paused, no job
    r.core.enabled = True
    r.frame(4)
    r.core.clear()
    r.frame(5)
    assert [(j.frame.stamp_ns // 10**9, [p.object_id for p in j.prompts]) for j in r.jobs] == [
        (1, ["cup"]), (2, ["cup"]), (4, ["mug"])]
    assert r.core.stats().received == 5


def test_updated_settings_apply_to_the_next_prompt_and_leaving_persist_drops_the_prompts(predictor):
    r = Recorder(predictor, persist=True)
    r.frame(1)
    r.core.on_prompt(prompt(point_object("cup", 45, 30)))
    r.core.update(replace(r.core.settings, max_objects=1))
    r.core.on_prompt(prompt(point_object("a", 45, 30), point_object("b", 45, 30)))  # now too many objects
    r.frame(2)
    r.core.update(replace(r.core.settings, persist=False))
    r.frame(3)
    assert [(j.frame.stamp_ns // 10**9, [p.object_id for p in j.prompts]) for j in r.jobs] == [
        (1, ["cup"]), (2, ["cup"])]
    assert r.core.active == [] and r.core.problems.counts() == {"prompt": 1}


def test_click_is_a_one_point_foreground_object_on_the_latest_frame(predictor):
    r = Recorder(predictor)
    r.frame(1)
    r.frame(2)
    r.core.click(12.5, 7)
    ((frame, (obj,)),) = [(j.frame, j.prompts) for j in r.jobs]
    assert frame.stamp_ns == 2_000_000_000
    assert (obj.object_id, obj.points.tolist(), obj.labels.tolist(), obj.box) == (CLICK_ID, [[12.5, 7.0]], [1], None)


# --- one job ---------------------------------------------------------------------------------------
def test_process_checks_objects_against_the_decoded_frame_and_builds_the_wanted_arrays(predictor):
    r = Recorder(predictor, persist=True)
    r.frame(1)
    r.core.on_prompt(prompt(point_object("cup", 45, 30), point_object("far", 300, 30),
                            box_object("tray", (5, 5, 90, 60))))
    (job,) = r.jobs
    output = r.core.process(job, {"mask", "labels"})
    assert output.object_ids == ["cup", "tray"] and output.frame is job.frame
    assert r.lines == ["frame 1.000 s: 1 of 3 objects ignored: object 'far': point [300.0, 30.0] is outside the "
                       "96 x 64 image"]
    assert [p.object_id for p in r.core.active] == ["cup", "tray"]  # dropped from the persisted prompts too
    assert set(output.images) == {"mask", "labels"}
    mask, labels = output.images["mask"], output.images["labels"]
    assert (mask.shape, mask.dtype, labels.shape, labels.dtype) == ((64, 96), np.uint8, (64, 96), np.uint16)
    assert np.array_equal(mask > 0, labels > 0)
    for label, ((x1, y1, x2, y2), area) in enumerate(output.extents, start=1):
        assert 0 < area <= np.count_nonzero(mask) and 0 <= x1 <= x2 < 96 and 0 <= y1 <= y2 < 64
    assert output.scores.shape == (2,) and set(output.timer.ms) == {"convert", "model", "encode"}
    overlay = r.core.process(job, set(OUTPUT_ENCODINGS)).images["overlay"]
    assert (overlay.shape, overlay.dtype) == ((64, 96, 3), np.uint8)


def test_unusable_frame_is_counted_and_skipped(predictor):
    r = Recorder(predictor)
    msg = r.frame(1)
    msg.encoding = "yuv422"
    r.core.on_prompt(prompt(point_object("cup", 45, 30)))
    assert r.core.process(r.jobs[0], set()) is None
    assert r.core.stats().failed == 1 and r.core.problems.counts() == {"image": 1}
    assert r.lines == ["frame 1.000 s skipped: unsupported encoding 'yuv422' (supported: rgb8, bgr8, rgba8, bgra8, "
                       "mono8, mono16, 16UC1)"]


def test_paused_core_processes_nothing(predictor):
    r = Recorder(predictor)
    r.frame(1)
    r.core.on_prompt(prompt(point_object("cup", 45, 30)))
    r.core.enabled = False
    assert r.core.process(r.jobs[0], set()) is None and r.core.stats().failed == 0


# --- diagnostics -----------------------------------------------------------------------------------
PERIOD = 1 / 30  # a 30 Hz camera


def test_frames_lost_between_stamps_raise_a_warning_naming_the_remedies(predictor):
    r = Recorder(predictor)
    kept = [0, 1, 5, 9, 10, 14, 20, 21, 27, 30]  # 10 of the 31 frames the camera sent
    for i in kept:
        r.frame(1 + i * PERIOD)
    health = r.core.diagnostics()
    assert health.warn and health.message == "most frames lost in transport"
    assert (health.values["period_frames_received"], health.values["period_frames_expected"]) == ("10", "31")
    assert float(health.values["camera_rate_hz"]) == pytest.approx(30, rel=1e-3)
    (line,) = r.lines
    assert line.startswith("received 10 of 31 expected frames in ") and line.endswith(f" s: {TRANSPORT_ADVICE}")
    assert len(f"(99 more transport problems not shown) {line}") <= r.core.problems.max_chars  # never cut
    assert "fastdds_profile:=shm" in TRANSPORT_ADVICE and "compressed" in TRANSPORT_ADVICE


def test_frames_lost_as_counted_by_the_middleware_raise_the_warning(predictor):
    r = Recorder(predictor)
    r.frame(1)
    r.core.delivery.lost(299)  # when nearly all are lost the stamps cannot tell the camera's rate
    health = r.core.diagnostics()
    assert health.warn and (health.values["period_frames_received"], health.values["period_frames_expected"],
                            health.values["period_frames_lost_in_transport"]) == ("1", "300", "299")


def test_all_frames_received_is_healthy_and_periods_restart(predictor):
    r = Recorder(predictor)
    for i in range(12):
        r.frame(1 + i * PERIOD)
    health = r.core.diagnostics()
    assert not health.warn and health.message == "running" and r.lines == []
    assert (health.values["period_frames_received"], health.values["period_frames_expected"]) == ("12", "12")
    r.frame(1 + 20 * PERIOD)  # the next period: frame 20 after frame 11 stands for 9, 8 of them lost
    assert r.core.diagnostics().values["period_frames_expected"] == "9"


def test_switching_track_mode_at_run_time_drops_the_followed_objects_and_new_rules_apply(predictor):
    r = Recorder(predictor, track=True)
    r.frame(1)
    r.core.on_prompt(prompt(point_object("cup", 45, 30)))
    assert r.core.tracker.following()
    r.core.update(replace(r.core.settings, track_min_score=0.9, track_max_area_change=1.5))
    assert (r.core.tracker.config.min_score, r.core.tracker.config.max_area_change) == (0.9, 1.5)
    assert r.core.tracker.following()  # new rules, the same objects
    r.core.update(replace(r.core.settings, track=False))
    assert not r.core.tracker.following()
    r.frame(2)
    assert len(r.jobs) == 1  # the prompt's own job; nothing is followed onto frame 2
