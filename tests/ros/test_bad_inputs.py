"""Bad input against segment_node in its own process (`python -m gara_ros.segment_node`, real rclpy).

One node per image transport (raw and compressed, started together) takes every kind of bad message a broken
driver or an attacker sends, one case after another (CASES). For each case the test waits until the node has
counted the problem it should report (its /diagnostics values `problems_<kind>`, so the input really arrived and
was handled), then checks that the process is alive and serves the next good frame: a result with that frame's
stamp. The log must stay short: one line per kind of problem per few seconds, each line short.
"""

from __future__ import annotations

import array
import math
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import pytest
import rclpy
from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import Point, PointStamped
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header
from std_srvs.srv import SetBool, Trigger

from gara_ros.conversions import array_to_image
from gara_ros.msg import SegmentPrompt, SegmentResult
from gara_ros.segment_node import OUTPUT_QOS, PROMPT_QOS
from tests.ros.harness import wait_for
from tests.ros.helpers import point_object, scene

REPO = Path(__file__).parents[2]
TRANSPORTS = ("raw", "compressed")
GOOD_STAMP, BAD_STAMP = 1000, 500  # + the case's index: the good frame after a case, a bad frame of a case
PROBLEM_LOG_PERIOD_S, MAX_LINE_CHARS = 5.0, 300  # gara_ros.core.ProblemLog's defaults


def png(rgb=None) -> bytes:
    return cv2.imencode(".png", cv2.cvtColor(scene() if rgb is None else rgb, cv2.COLOR_RGB2BGR))[1].tobytes()


def jpeg_declaring(width: int, height: int) -> bytes:
    """A valid 8 x 8 jpeg whose frame header declares width x height pixels (a decompression bomb for a decoder
    that trusts it: 631 bytes for 30000 x 30000 x 3 = 2.7 GB)."""
    data = bytearray(cv2.imencode(".jpg", scene(8, 8, (2, 2, 6, 6)))[1].tobytes())
    sof = data.index(b"\xff\xc0")
    data[sof + 5:sof + 9] = height.to_bytes(2, "big") + width.to_bytes(2, "big")
    return bytes(data)


class NodeUnderTest:
    """A segment_node process in namespace /<transport> (its prompts on /<transport>/prompts) and this test
    process's publishers, clients and subscriptions for it."""

    def __init__(self, client, transport: str):
        self.transport, self.client = transport, client
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gara_ros.segment_node", "--ros-args", "-r", f"__ns:=/{transport}",
             "-r", f"/gara/prompts:=/{transport}/prompts", "-p", "device:=cpu", "-p", "diagnostics_period:=0.1",
             "-p", f"image_transport:={transport}"],
            cwd=REPO, env=os.environ, stderr=subprocess.PIPE, text=True)
        self.log: list[str] = []
        threading.Thread(target=lambda: self.log.extend(self.process.stderr), daemon=True).start()
        ns, node = f"/{transport}", f"/{transport}/segment_node"
        self.images = client.create_publisher(CompressedImage if transport == "compressed" else Image, f"{ns}/image",
                                              qos_profile_sensor_data)
        self.prompts = client.create_publisher(SegmentPrompt, f"{ns}/prompts", PROMPT_QOS)
        self.clicks = client.create_publisher(PointStamped, f"{ns}/clicks", PROMPT_QOS)
        self.clear = client.create_client(Trigger, f"{node}/clear")
        self.enable = client.create_client(SetBool, f"{node}/enable")
        self.results: set[int] = set()  # result stamps, seconds
        client.create_subscription(SegmentResult, f"{node}/result",
                                   lambda msg: self.results.add(msg.header.stamp.sec), OUTPUT_QOS)
        self.status_name = f"{node}: segmentation"
        self.values: dict[str, str] = {}  # of the latest diagnostics

    def ready(self) -> bool:
        return bool(self.values) and all(p.get_subscription_count() for p in (self.images, self.prompts, self.clicks))

    def problems(self, kind: str) -> int:
        return int(self.values.get(f"problems_{kind}", 0))

    def frames_received(self) -> int:
        return int(self.values.get("frames_received", 0))

    def frame(self, sec: int, nanosec: int = 0):
        """The good frame (scene()) in this node's transport, with this stamp."""
        header = Header(stamp=Time(sec=sec, nanosec=nanosec), frame_id="camera")
        if self.transport == "compressed":
            return CompressedImage(header=header, format="png", data=array.array("B", png()))
        return array_to_image(scene(), "rgb8", header)

    def prompt(self, *objects, sec: int = 0, nanosec: int = 0) -> None:
        self.prompts.publish(SegmentPrompt(header=Header(stamp=Time(sec=sec, nanosec=nanosec)), objects=list(objects)))

    def call(self, client, request, timeout: float = 5.0):
        assert client.wait_for_service(timeout_sec=timeout), f"{client.srv_name} not available"
        future = client.call_async(request)
        assert wait_for(future.done, timeout), f"{client.srv_name} did not answer"
        return future.result()

    def serve(self, sec: int, timeout: float = 20.0) -> bool:
        """Publish a good frame stamped `sec` and a prompt for it (again each second: images are best effort)
        until a result with that stamp arrives."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.images.publish(self.frame(sec))
            self.prompt(point_object("cup", 45, 30), sec=sec)
            if wait_for(lambda: sec in self.results, 1.0):
                return True
        return False

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        return self.process.wait(30)


class Attacker:
    """A client node spun in a background thread, and the nodes under test."""

    def __init__(self):
        self.client = rclpy.create_node("gara_attacker")
        self.nodes = {transport: NodeUnderTest(self.client, transport) for transport in TRANSPORTS}
        self.client.create_subscription(DiagnosticArray, "/diagnostics", self._diagnostics, 10)
        self.executor = SingleThreadedExecutor()
        self.executor.add_node(self.client)
        self.thread = threading.Thread(target=self.executor.spin, daemon=True)
        self.thread.start()

    def _diagnostics(self, msg: DiagnosticArray) -> None:
        for node in self.nodes.values():
            for status in msg.status:
                if status.name == node.status_name:
                    node.values = {kv.key: kv.value for kv in status.values}

    def close(self) -> dict[str, int]:
        codes = {transport: node.stop() for transport, node in self.nodes.items()}
        self.executor.shutdown()
        self.thread.join()
        self.client.destroy_node()
        return codes


@pytest.fixture(scope="module")
def attacker(ros):
    attacker = Attacker()
    try:
        if not wait_for(lambda: all(n.ready() or n.process.poll() is not None for n in attacker.nodes.values()), 90):
            raise TimeoutError("the segment_node processes did not come up within 90 s")
        for node in attacker.nodes.values():
            assert node.process.poll() is None, "".join(node.log)
        yield attacker
    finally:
        codes = attacker.close()
    assert codes == {"raw": 0, "compressed": 0}  # Ctrl-C ends the node cleanly


# --- the cases -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Case:
    name: str
    transport: str
    kind: str | None  # the problem the node must count; None: odd but valid input, served or ignored quietly
    send: Callable[[NodeUnderTest, int], None]  # publishes the input (again if it may have been lost)


def bad_frame(change: Callable[[object], object], prompted: bool = True):
    """A good frame stamped BAD_STAMP + index, changed by `change`, and (`prompted`) a prompt for it: the node
    decodes a frame only for a job."""
    def send(node: NodeUnderTest, index: int) -> None:
        msg = change(node.frame(BAD_STAMP + index))
        received = node.frames_received()
        node.images.publish(msg)
        if prompted:
            wait_for(lambda: node.frames_received() > received, 1.0)  # else the caller sends both again
            node.prompt(point_object("cup", 1, 1), sec=msg.header.stamp.sec, nanosec=msg.header.stamp.nanosec)
    return send


def fields(**values):
    """A change that sets message fields (data given as bytes) and returns the message."""
    def change(msg):
        for name, value in values.items():
            setattr(msg, name, array.array("B", value) if isinstance(value, bytes) else value)
        return msg
    return change


def stamped(sec: int, nanosec: int = 0):
    return fields(header=Header(stamp=Time(sec=sec, nanosec=nanosec)))


def prompt_of(*objects, sec: int = 0):
    return lambda node, index: node.prompt(*objects, sec=sec)


def obj(object_id="o", points=((45.0, 30.0),), labels=None, box=None):
    """An ObjectPrompt message with any points, labels and box (None: no box)."""
    msg = point_object(object_id, 0, 0)
    msg.points = [Point(x=float(x), y=float(y)) for x, y in points]
    msg.labels = [1] * len(points) if labels is None else list(labels)
    if box is not None:
        msg.has_box, msg.box = True, [float(v) for v in box]
    return msg


def click(x, y):
    def send(node, index):
        msg = PointStamped()
        msg.point.x, msg.point.y = float(x), float(y)
        node.clicks.publish(msg)
    return send


def services(*calls):
    """Service calls in this order: ("clear" | "enable", request data), each answered with success."""
    def send(node, index):
        for service, data in calls:
            request = Trigger.Request() if service == "clear" else SetBool.Request(data=data)
            response = node.call(getattr(node, service), request)
            assert response.success, response.message
    return send


def paused_prompt(node, index):
    """A frame and a prompt while paused: handled quietly, nothing is segmented; then resumed."""
    services(("enable", False))(node, index)
    node.images.publish(node.frame(BAD_STAMP + index))
    node.prompt(point_object("cup", 45, 30), sec=BAD_STAMP + index)
    services(("enable", True))(node, index)


NAN, INF = math.nan, math.inf
CASES = [
    # prompts and clicks before any image
    Case("prompt before any image", "raw", "no_frame", prompt_of(point_object("cup", 45, 30))),
    Case("click before any image", "compressed", "no_frame", click(45, 30)),
    # image stamps
    Case("image stamp negative", "raw", "image", bad_frame(stamped(-1), prompted=False)),
    Case("image stamp most negative", "raw", "image", bad_frame(stamped(-2**31, 999_999_999), prompted=False)),
    Case("image stamp far in the future", "raw", None, bad_frame(stamped(2**31 - 1))),
    Case("image nanosec past one second", "raw", None, bad_frame(stamped(BAD_STAMP, 4_000_000_000))),
    Case("image stamp zero", "raw", None, bad_frame(stamped(0))),
    # raw image layout
    Case("unsupported encoding", "raw", "image", bad_frame(fields(encoding="yuv422"))),
    Case("empty encoding", "raw", "image", bad_frame(fields(encoding=""))),
    Case("encoding in capitals", "raw", "image", bad_frame(fields(encoding="RGB8"))),
    Case("data too short", "raw", "image", bad_frame(lambda m: fields(data=bytes(m.data)[:-5])(m))),
    Case("data too long", "raw", "image", bad_frame(lambda m: fields(data=bytes(m.data) + bytes(7))(m))),
    Case("no data", "raw", "image", bad_frame(fields(data=b""))),
    Case("zero-size image", "raw", "image", bad_frame(fields(width=0, height=0, step=0, data=b""))),
    Case("zero width", "raw", "image", bad_frame(fields(width=0))),
    Case("huge width with tiny data", "raw", "image", bad_frame(fields(width=2**32 - 1, step=2**32 - 1))),
    Case("huge height with tiny data", "raw", "image", bad_frame(fields(height=2**31))),
    Case("step shorter than a row", "raw", "image", bad_frame(fields(step=10))),
    Case("step wider than the data", "raw", "image", bad_frame(fields(step=2**32 - 1))),
    Case("one-pixel image", "raw", None,
         bad_frame(lambda m: array_to_image(scene(1, 1, (0, 0, 1, 1)), "rgb8", m.header))),
    Case("one-pixel-high strip", "raw", "inference",
         bad_frame(lambda m: array_to_image(scene(4000, 1, (0, 0, 10, 1)), "rgb8", m.header))),
    Case("big-endian flag on 8-bit data", "raw", None, bad_frame(fields(is_bigendian=1))),
    # compressed images
    Case("compressed stamp negative", "compressed", "image", bad_frame(stamped(-1), prompted=False)),
    Case("compressed empty data", "compressed", "image", bad_frame(fields(data=b""))),
    Case("corrupt jpeg", "compressed", "image",
         bad_frame(fields(format="jpeg", data=b"\xff\xd8" + bytes(range(256)) * 4))),
    Case("not an image at all", "compressed", "image", bad_frame(fields(data=b"GIF89a? no"))),
    Case("truncated png", "compressed", "image", bad_frame(fields(data=png()[:200]))),
    Case("jpeg declaring 30000 x 30000", "compressed", "image",
         bad_frame(fields(format="jpeg", data=jpeg_declaring(30000, 30000)))),
    Case("jpeg declaring 9000 x 8000", "compressed", "image",
         bad_frame(fields(format="jpeg", data=jpeg_declaring(9000, 8000)))),
    Case("png labelled jpeg", "compressed", None, bad_frame(fields(format="jpeg"))),
    Case("compressed prompt outside", "compressed", "object", prompt_of(point_object("far", 500, 30))),
    # prompt stamps and sizes
    Case("prompt stamp negative", "raw", "prompt", prompt_of(point_object("cup", 45, 30), sec=-1)),
    Case("prompt stamp far in the future", "raw", "no_frame", prompt_of(point_object("cup", 45, 30), sec=2**31 - 1)),
    Case("prompt stamp of no buffered frame", "raw", "no_frame", prompt_of(point_object("cup", 45, 30), sec=3)),
    Case("prompt without objects", "raw", "prompt", prompt_of()),
    Case("17 objects", "raw", "prompt", prompt_of(*(point_object(f"o{i}", 45, 30) for i in range(17)))),
    Case("1000 objects", "raw", "prompt", prompt_of(*(point_object(f"o{i}", 45, 30) for i in range(1000)))),
    # objects
    Case("empty object id", "raw", "object", prompt_of(obj(""))),
    Case("duplicate object ids", "raw", "object", prompt_of(obj("a"), obj("a"))),
    Case("10,000-character object id", "raw", None, prompt_of(obj("x" * 10_000))),
    Case("point NaN", "raw", "object", prompt_of(obj(points=[(NAN, 30)]))),
    Case("point infinite", "raw", "object", prompt_of(obj(points=[(45, -INF)]))),
    Case("point outside", "raw", "object", prompt_of(obj(points=[(1e9, 30)]))),
    Case("point negative", "raw", "object", prompt_of(obj(points=[(-1, 30)]))),
    Case("more labels than points", "raw", "object", prompt_of(obj(labels=[1, 0]))),
    Case("labels without points", "raw", "object", prompt_of(obj(points=[], labels=[1]))),
    Case("label 7", "raw", "object", prompt_of(obj(labels=[7]))),
    Case("no point and no box", "raw", "object", prompt_of(obj(points=[]))),
    Case("10,000 points", "raw", "object", prompt_of(obj(points=[(45, 30)] * 10_000))),
    Case("box inverted", "raw", "object", prompt_of(obj(points=[], box=(60, 44, 30, 20)))),
    Case("box outside", "raw", "object", prompt_of(obj(points=[], box=(200, 100, 300, 200)))),
    Case("box NaN", "raw", "object", prompt_of(obj(points=[], box=(NAN, 20, 60, 44)))),
    Case("box infinite", "raw", "object", prompt_of(obj(points=[], box=(30, 20, INF, 44)))),
    Case("NaN box without has_box", "raw", None, prompt_of(fields(box=[NAN] * 4)(obj("p")))),
    Case("good and bad objects together", "raw", "object", prompt_of(obj("good"), obj("bad", points=[(NAN, 0)]))),
    # clicks
    Case("click outside", "raw", "object", click(-5, 1e9)),
    Case("click NaN", "raw", "object", click(NAN, 3)),
    # services in odd orders
    Case("clear with nothing to clear", "raw", None, services(("clear", None), ("clear", None))),
    Case("enable twice, pause twice", "raw", None,
         services(("enable", True), ("enable", True), ("enable", False), ("enable", False), ("clear", None),
                  ("enable", True))),
    Case("frame and prompt while paused", "raw", None, paused_prompt),
]


@pytest.mark.parametrize("index", range(len(CASES)), ids=[case.name for case in CASES])
def test_node_survives_bad_input_and_serves_the_next_frame(attacker, index):
    case = CASES[index]
    node = attacker.nodes[case.transport]
    before = node.problems(case.kind) if case.kind else 0
    case.send(node, index)
    if case.kind:
        deadline = time.monotonic() + 20
        while not wait_for(lambda: node.problems(case.kind) > before, 1.0):
            assert node.process.poll() is None, "".join(node.log[-20:])
            assert time.monotonic() < deadline, f"the node did not report a {case.kind} problem"
            case.send(node, index)  # an image may have been lost (best effort)
    assert node.process.poll() is None, "".join(node.log[-20:])
    assert node.serve(GOOD_STAMP + index), f"no result for the good frame after {case.name!r}"


def test_a_burst_of_bad_images_is_counted_and_logged_once_per_period(attacker):
    node = attacker.nodes["raw"]
    before, start = node.problems("image"), time.monotonic()
    for _ in range(200):  # a broken camera at about 400 Hz
        bad_frame(stamped(-7), prompted=False)(node, 0)
        time.sleep(0.0025)
    assert wait_for(lambda: node.problems("image") >= before + 20, 10)  # many arrive (best effort, depth 1)
    assert node.serve(GOOD_STAMP + len(CASES))
    lines = [line for line in node.log if "stamp -7 s" in line]
    assert 1 <= len(lines) <= 1 + (time.monotonic() - start) / PROBLEM_LOG_PERIOD_S


def test_log_lines_are_short_and_few(attacker):
    """After the cases: every problem line is one short line; far fewer lines than problems."""
    for node in attacker.nodes.values():
        problem_lines = [line for line in node.log if re.match(r"\[(WARN|ERROR)\]", line)]
        messages = [line.split("]: ", 1)[1].rstrip("\n") for line in problem_lines]
        assert messages and all(len(m) <= MAX_LINE_CHARS for m in messages), max(messages, key=len)
        problems = sum(int(v) for k, v in node.values.items() if k.startswith("problems_"))
        assert len(problem_lines) < problems
        assert node.problems("internal") == 0  # every case was handled where it belongs, not by the last resort
