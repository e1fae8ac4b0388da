"""segment_node under a 30 Hz camera with a slower model: masks are for the newest frame, drops are counted, and the
node's memory stays flat.

    .venv/bin/python -m bench.node_camera [--frames 3000] [--rate 30] [--size 1920x1080] [--transport shm]

This process is the camera: it publishes bgr8 frames on a fixed 30 Hz schedule (stamp = publish tick) to a
segment_node process (bench.ros_common) with persisted prompts, and receives ~/result and ~/mask. The embedded tiny
model on CPU at 1080p is slower than 30 Hz here, so no artificial delay is added (the run prints the model's rate).
Reported:
- freshness: at each job's start, the frames newer than the one it takes (0 = newest); at publish, the age of the
  source frame (newest received stamp - mask stamp, node side); at the camera, newest published stamp - mask stamp;
  mask stamps must only increase;
- drops: frames published, received by the node, replaced in its one-item slot (latest-only), processed;
- memory: the node's RSS every --rss-every frames: first, last, max.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time

from bench.ros_common import (
    NODE, camera_frame, load_average, median_ms, overhead_ms, ros_env, ros_info, rss_mb, start_node, stop_node,
    use_env,
)
from bench.node_latency import prompt_msg

WARM_UP_FRAMES = 10  # published before the prompt; the node needs a frame to apply it to
PROMPT_RETRY_FRAMES = 30  # the prompt is sent again this often until the first mask arrives


def percentiles(values: list[float]) -> str:
    """'median / p95 / max' with one decimal."""
    if not values:
        return "-"
    ordered = sorted(values)
    return (f"{statistics.median(ordered):.1f} / {ordered[int(0.95 * (len(ordered) - 1))]:.1f} / "
            f"{ordered[-1]:.1f}")


def run(args: argparse.Namespace) -> int:
    width, height = (int(v) for v in args.size.split("x"))
    env = ros_env(args.domain_id, args.transport)
    use_env(env)
    node_process, log = start_node(env, {"persist": True, "device": "cpu"})

    import rclpy
    from builtin_interfaces.msg import Time
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image
    from std_msgs.msg import Header

    from gara_ros.conversions import array_to_image
    from gara_ros.msg import SegmentPrompt
    from gara_ros.segment_node import OUTPUT_QOS
    from tests.ros.harness import wait_for

    rclpy.init()
    camera = rclpy.create_node("bench_camera")
    images = camera.create_publisher(Image, "image", qos_profile_sensor_data)
    prompts = camera.create_publisher(SegmentPrompt, "/gara/prompts", 10)
    period_ns = round(1e9 / args.rate)
    newest = {"stamp_ns": 0}  # newest published stamp
    masks: list[tuple[int, int]] = []  # (mask stamp_ns, newest published stamp_ns when it arrived)
    camera.create_subscription(Image, f"{NODE}/mask", lambda m: masks.append(
        (m.header.stamp.sec * 10**9 + m.header.stamp.nanosec, newest["stamp_ns"])), OUTPUT_QOS)
    executor = SingleThreadedExecutor()
    executor.add_node(camera)
    threading.Thread(target=executor.spin, daemon=True).start()
    frames = [array_to_image(camera_frame(width, height, i), "bgr8") for i in range(8)]
    rss: list[tuple[int, float]] = []
    late = 0
    try:
        if not wait_for(lambda: images.get_subscription_count() and prompts.get_subscription_count(), 60):
            raise TimeoutError("segment_node not discovered within 60 s")
        start = time.perf_counter()
        for i in range(args.frames):
            delay = start + i / args.rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            else:
                late += delay < -0.5 / args.rate  # more than half a period behind the schedule
            stamp_ns = 10**9 + i * period_ns
            msg = frames[i % len(frames)]
            msg.header = Header(stamp=Time(sec=stamp_ns // 10**9, nanosec=stamp_ns % 10**9), frame_id="camera")
            images.publish(msg)
            newest["stamp_ns"] = stamp_ns
            if i >= WARM_UP_FRAMES and not masks and (i - WARM_UP_FRAMES) % PROMPT_RETRY_FRAMES == 0:
                prompts.publish(prompt_msg(args.objects))  # persisted by the node; again until masks flow
            if i % args.rss_every == 0:
                rss.append((i, rss_mb(node_process.pid)))
        elapsed = time.perf_counter() - start
        time.sleep(2.0)  # the last job's outputs
    finally:
        executor.shutdown()
        camera.destroy_node()
        rclpy.shutdown()
        node = stop_node(node_process, log)

    processed = node["frames"]
    stamps = [s for s, _ in masks]
    model = [f["model"] for f in processed]
    overhead = [overhead_ms(f) for f in processed]
    print(f"camera {width}x{height} bgr8 at {args.rate:g} Hz, {args.frames} frames in {elapsed:.1f} s "
          f"({args.frames / elapsed:.1f} Hz achieved, {late} ticks late by > half a period), transport "
          f"{args.transport}, {args.objects} objects; load {load_average()}")
    print(f"model {median_ms(model)} ms median = {1e3 / statistics.median(model):.1f} Hz (slower than the camera: "
          f"{statistics.median(model) > 1e3 / args.rate}); node overhead {median_ms(overhead)} ms (CPU "
          f"{median_ms([overhead_ms(f, 'cpu_') for f in processed])} ms)")
    frames_ms = 1e3 / args.rate
    print("freshness (median / p95 / max):")
    print(f"  frames newer than the job's frame when the job started: "
          f"{percentiles([(f['newest_at_start_ns'] - f['stamp_ns']) / period_ns for f in processed])} (0 = newest)")
    print(f"  age of the source frame when its outputs were published, node side: "
          f"{percentiles([(f['newest_at_publish_ns'] - f['stamp_ns']) / 1e6 for f in processed])} ms "
          f"(one frame = {frames_ms:.1f} ms)")
    print(f"  newest published stamp - mask stamp, when the mask arrived: "
          f"{percentiles([(n - s) / 1e6 for s, n in masks])} ms")
    print(f"  mask stamps strictly increasing: {all(a < b for a, b in zip(stamps, stamps[1:]))} ({len(masks)} masks)")
    print(f"drops: published {args.frames}, received by the node {node['received']} "
          f"(lost in transport {args.frames - node['received']}), replaced in the one-item slot "
          f"{node['replaced_in_slot']}, processed {len(processed)}, frame errors {node['errors']}")
    values = [mb for _, mb in rss]
    print(f"node RSS every {args.rss_every} frames: first {values[0]:.0f} MB (frame {rss[0][0]}), last "
          f"{values[-1]:.0f} MB (frame {rss[-1][0]}), max {max(values):.0f} MB; after warm-up (frame "
          f"{rss[len(rss) // 4][0]} on): {min(values[len(rss) // 4:]):.0f}..{max(values[len(rss) // 4:]):.0f} MB")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--frames", type=int, default=3000, help="camera frames (3000 at 30 Hz: 100 s)")
    p.add_argument("--rate", type=float, default=30.0, help="camera rate in Hz")
    p.add_argument("--size", default="1920x1080", help="WIDTHxHEIGHT")
    p.add_argument("--objects", type=int, default=4, help="prompted objects (one point each)")
    p.add_argument("--transport", default="shm", choices=("default", "shm"), help="Fast DDS profile")
    p.add_argument("--rss-every", type=int, default=100, help="frames between RSS samples of the node")
    p.add_argument("--domain-id", type=int, default=95, help="ROS_DOMAIN_ID of this run")
    args = p.parse_args(argv)
    import torch

    from bench.common import machine_info

    print(machine_info(torch.device("cpu")))
    print(f"ROS: {ros_info()}")
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
