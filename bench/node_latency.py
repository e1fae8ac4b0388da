"""segment_node latency: image publish -> mask receive in another process, next to the model's own time on the same
frames and the node's own overhead; default Fast DDS transports vs the large shared-memory profile.

    .venv/bin/python -m bench.node_latency [--frames 12] [--objects 4] [--transports default,shm]

Per transport setting, a segment_node process (bench.ros_common) and a client process (this file, --client) run
with that setting's FASTDDS_DEFAULT_PROFILES_FILE. The client publishes bgr8 frames one at a time (the next once
all outputs of the previous one arrived, or after LOST_AFTER_S: lost) at 640x480 and 1920x1080, with persisted
prompts, subscribed to ~/result and ~/mask (then, at 1080p, also to ~/labels and ~/overlay).
The node times its own stages per frame: convert (message -> RGB), model (set_image + predict), encode (masks ->
messages), publish (rclpy publish calls). Node overhead = convert + encode + publish, in wall time and in the worker
thread's CPU time (the difference is waiting for a core on a busy machine; OpenCV may add threads of its own).
Prompt handling (once per prompt) and the rclpy message -> Python conversion of a received image are timed here on
the same frames. Transfer = end to end - node stages.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import threading
import time

from bench.ros_common import (
    NODE, camera_frame, load_average, median_ms, overhead_ms, ros_env, ros_info, start_node, stop_node, use_env,
)

OUTPUT_SETS = {"mask": ("result", "mask"), "all": ("result", "mask", "labels", "overlay")}
PASSES = ((640, 480, "mask"), (1920, 1080, "mask"), (1920, 1080, "all"))  # width, height, outputs
WARM_UP_TRIES = 5
LOST_AFTER_S = 2.0  # a timed frame whose outputs are not all in by then counts as lost (best-effort images)
TARGET_MS, TARGET_SHARE = 5.0, 0.05  # node overhead at 1080p; and as a share of the model's frame time


def prompt_msg(objects: int):
    """`objects` one-point objects inside 640x480, so that they are valid at every size of PASSES."""
    from geometry_msgs.msg import Point

    from gara_ros.msg import ObjectPrompt, SegmentPrompt

    return SegmentPrompt(objects=[ObjectPrompt(object_id=f"object{i}", points=[Point(x=160.0 + 100 * i, y=240.0)],
                                               labels=[ObjectPrompt.LABEL_FOREGROUND]) for i in range(objects)])


def client(frames: int, objects: int) -> list[dict]:
    """Runs PASSES against a running segment_node; per timed frame: pass, stamp_ns, ms from publish to each output."""
    import rclpy
    from builtin_interfaces.msg import Time
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image
    from std_msgs.msg import Header

    from gara_ros.conversions import array_to_image
    from gara_ros.msg import SegmentPrompt, SegmentResult
    from gara_ros.segment_node import OUTPUT_QOS
    from tests.ros.harness import wait_for

    rclpy.init()
    node = rclpy.create_node("bench_client")
    images = node.create_publisher(Image, "image", qos_profile_sensor_data)
    prompts = node.create_publisher(SegmentPrompt, "/gara/prompts", 10)
    arrived: dict[tuple[str, int], float] = {}  # (output, stamp_ns) -> perf_counter at the callback

    def on_output(output: str):
        def callback(msg):
            # the first arrival: a frame whose outputs came late may be processed again for a re-sent prompt
            arrived.setdefault((output, msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec), time.perf_counter())
        return callback

    executor = SingleThreadedExecutor()
    executor.add_node(node)
    threading.Thread(target=executor.spin, daemon=True).start()
    if not wait_for(lambda: images.get_subscription_count() and prompts.get_subscription_count(), 60):
        raise TimeoutError("segment_node not discovered within 60 s")
    types = {"result": SegmentResult, "mask": Image, "labels": Image, "overlay": Image}
    subscriptions = {}
    records, index = [], 0

    def send(width: int, height: int, outputs: tuple[str, ...], timeout: float) -> dict | None:
        """One frame; its publish-to-arrival times per output, or None if not all arrived within `timeout`."""
        nonlocal index
        index += 1
        stamp_ns = 10**9 + index * 33_333_333
        msg = array_to_image(camera_frame(width, height, index), "bgr8",
                             Header(stamp=Time(sec=stamp_ns // 10**9, nanosec=stamp_ns % 10**9), frame_id="camera"))
        start = time.perf_counter()
        images.publish(msg)
        if not wait_for(lambda: all((out, stamp_ns) in arrived for out in outputs), timeout, period=0.001):
            return None
        return {"stamp_ns": stamp_ns, **{f"{out}_ms": (arrived[(out, stamp_ns)] - start) * 1e3 for out in outputs}}

    for width, height, output_set in PASSES:
        outputs = OUTPUT_SETS[output_set]
        for out in OUTPUT_SETS["all"]:  # the node builds only the outputs someone subscribes to
            if out in outputs and out not in subscriptions:
                subscriptions[out] = node.create_subscription(types[out], f"{NODE}/{out}", on_output(out), OUTPUT_QOS)
            elif out not in outputs and out in subscriptions:
                node.destroy_subscription(subscriptions.pop(out))
        for _ in range(WARM_UP_TRIES):  # until one frame brings every output (discovery, first prompt, first run)
            send(width, height, (), 0)  # a frame for the prompt to apply to (best effort: may be lost)
            time.sleep(0.5)
            prompts.publish(prompt_msg(objects))  # persisted by the node; sent again until outputs flow
            if send(width, height, outputs, 10) is not None:
                break
        else:
            print(f"{width}x{height}: no frame came through in {WARM_UP_TRIES} tries", file=sys.stderr)
        for _ in range(frames):
            record = send(width, height, outputs, LOST_AFTER_S)
            records.append({"pass": f"{width}x{height} {output_set}", "lost": record is None, **(record or {})})
    executor.shutdown()
    node.destroy_node()
    rclpy.shutdown()
    return records


def function_times(objects: int, repeats: int = 30) -> dict[str, dict[str, float]]:
    """Median ms of the node-side pure functions on this benchmark's frames: bgr8 -> RGB, prompt handling, and the
    rclpy message -> Python conversion of a received image (in the subscription, inside 'transfer' below)."""
    from rclpy.serialization import deserialize_message, serialize_message
    from sensor_msgs.msg import Image

    from gara_ros.conversions import array_to_image, image_to_rgb, prompts_from_msg
    from gara_ros.core import check_objects

    def median(fn) -> float:
        fn()
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            fn()
            times.append((time.perf_counter() - start) * 1e3)
        return statistics.median(times)

    out, prompt = {}, prompt_msg(objects)
    for width, height in sorted({(w, h) for w, h, _ in PASSES}):
        msg = array_to_image(camera_frame(width, height), "bgr8")
        data = serialize_message(msg)
        out[f"{width}x{height}"] = {
            "bgr8 -> RGB": median(lambda: image_to_rgb(msg)),
            f"prompt ({objects} objects)": median(lambda: check_objects(prompts_from_msg(prompt), (height, width), 64)),
            "rclpy Image -> Python": median(lambda: deserialize_message(data, Image)),
        }
    return out


def run_setting(transport: str, domain_id: int, frames: int, objects: int) -> tuple[list[dict], list[dict]]:
    """Node and client processes for one transport setting; (client records, node stage log)."""
    env = ros_env(domain_id, transport)
    node, log = start_node(env, {"persist": True, "device": "cpu"})
    try:
        done = subprocess.run([sys.executable, "-m", "bench.node_latency", "--client", "--frames", str(frames),
                               "--objects", str(objects)], env=env, stdout=subprocess.PIPE, text=True, timeout=1800)
    finally:
        stages = stop_node(node, log)["frames"]
    if done.returncode:
        raise RuntimeError(f"client failed ({transport}), exit code {done.returncode}; its stderr is above")
    return json.loads(done.stdout.strip().splitlines()[-1]), stages


def report(transport: str, records: list[dict], stages: list[dict]) -> list[str]:
    """Table rows for one transport setting."""
    by_stamp = {}
    for s in stages:  # the first processing of each frame, as the client keeps the first arrival
        by_stamp.setdefault(s["stamp_ns"], s)
    rows = []
    for name in dict.fromkeys(r["pass"] for r in records):
        done = [r for r in records if r["pass"] == name and not r["lost"] and r["stamp_ns"] in by_stamp]
        lost = sum(r["pass"] == name and r["lost"] for r in records)
        node = [by_stamp[r["stamp_ns"]] for r in done]
        model = [s["model"] for s in node]
        overhead = [overhead_ms(s) for s in node]
        transfer = [r["mask_ms"] - s["model"] - overhead_ms(s) for r, s in zip(done, node)]
        share = statistics.median(overhead) / statistics.median(model) if node else float("nan")
        rows.append(
            f"{transport:8s} {name:15s} {len(done):3d} {lost:4d} {median_ms(model):>8s} "
            f"{median_ms([s['convert'] for s in node]):>7s} {median_ms([s['encode'] for s in node]):>7s} "
            f"{median_ms([s['publish'] for s in node]):>7s} {median_ms(overhead):>8s} "
            f"{median_ms([overhead_ms(s, 'cpu_') for s in node]):>7s} {100 * share:6.1f}% "
            f"{median_ms([r['mask_ms'] for r in done]):>8s} {median_ms([r['result_ms'] for r in done]):>8s} "
            f"{median_ms(transfer):>8s}")
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--frames", type=int, default=12, help="timed frames per size and output set")
    p.add_argument("--objects", type=int, default=4, help="prompted objects (one point each)")
    p.add_argument("--transports", default="default,shm", help="comma-separated: default, shm")
    p.add_argument("--client", action="store_true", help=argparse.SUPPRESS)  # the client process of run_setting
    args = p.parse_args(argv)
    if args.client:
        print(json.dumps(client(args.frames, args.objects)))
        return 0

    use_env(ros_env(90, "default"))  # rclpy.serialization below; no node is created in this process
    import torch

    from bench.common import machine_info

    print(machine_info(torch.device("cpu")))
    print(f"ROS: {ros_info()}; node device cpu, embedded tiny model, {args.objects} objects, bgr8 input")
    for size, times in function_times(args.objects).items():
        print(f"pure functions at {size}: " + ", ".join(f"{k} {v:.2f} ms" for k, v in times.items()))
    print(f"\n{'transport':8s} {'pass':15s} {'n':>3s} {'lost':>4s} {'model':>8s} {'convert':>7s} {'encode':>7s} "
          f"{'publish':>7s} {'overhead':>8s} {'its CPU':>7s} {'/model':>7s} {'e2e mask':>8s} {'e2e res':>8s} "
          f"{'transfer':>8s}   (ms, medians)")
    for domain_id, transport in enumerate(args.transports.split(","), start=91):
        records, stages = run_setting(transport, domain_id, args.frames, args.objects)
        print("\n".join(report(transport, records, stages)), f"   [load {load_average()}]", flush=True)
    print(f"\ntargets: node overhead < {TARGET_MS:.0f} ms at 1080p and < {100 * TARGET_SHARE:.0f}% of the model's "
          "frame time (result + mask outputs; labels and overlay are optional outputs, built only when subscribed)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
