"""Replay throughput (python -m gara_ros.replay) against the node's processing rate, on the same model and frames.

    .venv/bin/python -m bench.replay [--frames 40] [--size 640x480] [--objects 4] [--rounds 3] [--threads N]

Node: a SegmentNode in this process (real rclpy, persist, every output subscribed) runs its worker's step,
`publish(job)` (decode, model, masks to messages, publish), on each frame back to back: the rate at which it can
process frames, transport left out. Replay: `Replay.run` on an MCAP bag of the same bgr8 frames with the same
prompts (a prompt file, objects on frame 0), timed from the first image to the last output: reading and decoding
the bag, the same core, serializing and writing the output bag. Three replay variants: the defaults (with the
overlay video), --no-video, and --compress (zstd chunks). Model loading is left out. Rounds alternate the four
passes so that load on a shared machine hits all alike; the first round is a warm-up.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from bench.common import machine_info
from bench.ros_common import camera_frame, ros_env, ros_info, use_env

IMAGE_TOPIC = "/camera/image_raw"


def write_inputs(folder: Path, frames: int, width: int, height: int, objects: int) -> tuple[Path, Path]:
    """An MCAP bag of `frames` bgr8 camera frames at 10 Hz, and a prompt file of `objects` one-point objects."""
    from rosbags.rosbag2 import StoragePlugin, Writer

    from gara_ros.bag import message_types, typestore
    from gara_ros.conversions import array_to_image

    store = typestore()
    types = store.types
    with Writer(folder / "bag", version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        connection = writer.add_connection(IMAGE_TOPIC, "sensor_msgs/msg/Image", typestore=store)
        for index in range(frames):
            stamp_ns = 10**18 + index * 100_000_000
            header = types["std_msgs/msg/Header"](stamp=types["builtin_interfaces/msg/Time"](
                sec=stamp_ns // 10**9, nanosec=stamp_ns % 10**9), frame_id="camera")
            msg = array_to_image(camera_frame(width, height, index), "bgr8", header, message_types(store))
            writer.write(connection, stamp_ns + 5_000_000, store.serialize_cdr(msg, connection.msgtype))
    prompts = folder / "prompts.yaml"
    prompts.write_text("objects:\n" + "".join(
        f"  - {{id: object{i}, frame: 0, points: [[{width / 4 + i * width / (2 * objects):.0f}, {height / 2:.0f}]]}}\n"
        for i in range(objects)))
    return folder / "bag", prompts


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--frames", type=int, default=40)
    p.add_argument("--size", default="640x480", help="WxH of the frames")
    p.add_argument("--objects", type=int, default=4)
    p.add_argument("--rounds", type=int, default=3, help="timed rounds after one warm-up round")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's choice)")
    p.add_argument("--domain-id", type=int, default=87)
    args = p.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    use_env(ros_env(args.domain_id, "default"))

    import rclpy
    import torch
    from builtin_interfaces.msg import Time
    from rclpy.parameter import Parameter
    from std_msgs.msg import Header

    from gara_ros.conversions import array_to_image, ros_message_class
    from gara_ros.core import OUTPUT_TYPES, Job
    from gara_ros.frames import Frame
    from gara_ros.prompt_file import read_prompt_file
    from gara_ros.replay import Replay, build_parser, parse_args
    from gara_ros.segment_node import OUTPUT_QOS, SegmentNode
    from tests.ros.harness import wait_for

    if args.threads:
        torch.set_num_threads(args.threads)
    print(machine_info(torch.device("cpu")))
    print(ros_info())
    folder = Path(tempfile.mkdtemp(prefix="gara_bench_replay_"))
    bag, prompt_file = write_inputs(folder, args.frames, width, height, args.objects)
    prompts = [item.prompt for item in read_prompt_file(prompt_file)]
    messages = []
    for index in range(args.frames):
        stamp_ns = 10**18 + index * 100_000_000
        msg = array_to_image(camera_frame(width, height, index), "bgr8",
                             Header(stamp=Time(sec=stamp_ns // 10**9, nanosec=stamp_ns % 10**9), frame_id="camera"))
        messages.append(Frame(msg, stamp_ns))

    rclpy.init()
    node = SegmentNode(parameter_overrides=[Parameter("persist", value=True), Parameter("device", value="cpu")])
    client = rclpy.create_node("bench_replay_client")
    for name, msgtype in OUTPUT_TYPES.items():
        if name in node.output_publishers:
            client.create_subscription(ros_message_class(msgtype), f"{node.get_fully_qualified_name()}/{name}",
                                       lambda msg: None, OUTPUT_QOS)
    if not wait_for(lambda: all(pub.get_subscription_count() for pub in node.output_publishers.values()), 30):
        raise TimeoutError("the node's outputs were not subscribed within 30 s")
    print(f"model: {node.core.predictor.model_name} on {node.core.predictor.device}; {args.frames} frames "
          f"{width}x{height} bgr8, {args.objects} objects")

    def node_pass() -> float:
        start = time.perf_counter()
        for frame in messages:
            node.publish(Job(frame, prompts))
        assert node.core.stats().failed == 0
        return args.frames / (time.perf_counter() - start)

    runs = iter(range(10**6))

    def replay_pass(*options: str) -> float:
        replay_args = parse_args(build_parser(), [str(bag), "--image-topic", IMAGE_TOPIC, "--prompts", str(prompt_file),
                                                  "--out", str(folder / f"out{next(runs)}"), "--device", "cpu",
                                                  "--quiet", *options])
        summary = Replay(replay_args).run()
        assert summary.segmented == args.frames
        return summary.frames / summary.seconds

    passes = {"node": node_pass, "replay": replay_pass, "replay --no-video": lambda: replay_pass("--no-video"),
              "replay --compress": lambda: replay_pass("--compress")}
    rates: dict[str, list[float]] = {name: [] for name in passes}
    for round_index in range(args.rounds + 1):
        for name, run in passes.items():
            rate = run()
            if round_index:
                rates[name].append(rate)
    node.destroy_node()
    client.destroy_node()
    rclpy.shutdown()
    for name, values in rates.items():
        print(f"{name:18s} {statistics.median(values):6.2f} frames/s (min {min(values):.2f}, max {max(values):.2f})")
    for name in list(passes)[1:]:
        ratios = [r / n for r, n in zip(rates[name], rates["node"], strict=True)]
        print(f"{name} / node: {statistics.median(ratios):.3f} (per round: {', '.join(f'{r:.3f}' for r in ratios)})")
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
