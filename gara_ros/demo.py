"""Demo without camera or weights: segment_node in-process, degraded synthetic frames in, overlays out.

python -m gara_ros.demo [--out outputs/ros_demo] [--frames 15] [--checkpoint FILE --adapter FILE]

Plays a moving synthetic scene through clear, fog, rain, snow and night conditions on the
image topic, prompts every object once with its box and interior point (persist mode), and per frame prints the latency,
the predicted IoU and the IoU against the true masks; writes overlay PNGs and overlays.gif.
"""

from __future__ import annotations

import argparse
import os
import threading
import time
from pathlib import Path

import imageio.v2 as imageio
import numpy as np
import rclpy
from builtin_interfaces.msg import Time
from geometry_msgs.msg import Point
from rclpy.executors import SingleThreadedExecutor
from rclpy.parameter import Parameter
from sensor_msgs.msg import Image
from std_msgs.msg import Header

from gara_model.data import corrupt, render_scene
from gara_model.data.prompts import interior_points, mask_boxes
from gara_ros.conversions import array_to_image, image_to_array
from gara_ros.msg import ObjectPrompt, SegmentPrompt, SegmentResult
from gara_ros.segment_node import IMAGE_QOS, OUTPUT_QOS, PROMPT_QOS, SegmentNode

CONDITIONS = ("clear", "fog", "rain", "snow", "night")


def degrade(image: np.ndarray, condition: str, seed: int) -> np.ndarray:
    """(H,W,3) uint8 RGB under `condition`; night is a dark, noisy version of the frame."""
    if condition == "clear":
        return image
    if condition == "night":
        return corrupt((image * 0.3).astype(np.uint8), "gauss_noise", seed=seed)
    return corrupt(image, condition, seed=seed)


def frames(count: int, size: int = 160, seed: int = 0):
    """Yield (condition, RGB frame, true (O,H,W) masks): the scene drifts 1 px right per frame."""
    scene = render_scene(np.random.default_rng(seed), image_size=size, num_objects=(2, 3))
    for i in range(count):
        condition = CONDITIONS[i * len(CONDITIONS) // count]
        yield condition, degrade(np.roll(scene.image, i, axis=1), condition, seed + i), np.roll(scene.masks, i, axis=2)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


def prompt_for(masks: np.ndarray) -> SegmentPrompt:
    """Per true (O,H,W) mask, as a detector plus a click would give: its box and its most interior pixel."""
    return SegmentPrompt(objects=[
        ObjectPrompt(object_id=f"obj{k}", points=[Point(x=float(x), y=float(y))],
                     labels=[ObjectPrompt.LABEL_FOREGROUND], has_box=True, box=[float(v) for v in box])
        for k, ((x, y), box) in enumerate(zip(interior_points(masks), mask_boxes(masks), strict=True))])


class DemoClient:
    """A SegmentNode and a client node in this process, spun in a background thread; the client keeps the node's
    first result, labels and overlay per source stamp (seconds)."""

    OUTPUTS = {"result": SegmentResult, "labels": Image, "overlay": Image}

    def __init__(self, **params):
        self.node = SegmentNode(parameter_overrides=[Parameter(k, value=v) for k, v in params.items()])
        self.client = rclpy.create_node("gara_demo_client")
        self.images = self.client.create_publisher(Image, "image", IMAGE_QOS)
        self.prompts = self.client.create_publisher(SegmentPrompt, "/gara/prompts", PROMPT_QOS)
        self.outputs: dict[int, dict] = {}
        self.arrived = threading.Condition()
        for output, msg_type in self.OUTPUTS.items():
            self.client.create_subscription(msg_type, f"{self.node.get_fully_qualified_name()}/{output}",
                                            lambda msg, output=output: self._keep(output, msg), OUTPUT_QOS)
        self.executor = SingleThreadedExecutor()
        self.executor.add_node(self.node)
        self.executor.add_node(self.client)
        self.thread = threading.Thread(target=self.executor.spin, daemon=True)
        self.thread.start()

    def _keep(self, output: str, msg) -> None:
        with self.arrived:
            self.outputs.setdefault(msg.header.stamp.sec, {}).setdefault(output, msg)
            self.arrived.notify_all()

    def segment(self, image: Image, prompt: SegmentPrompt | None, timeout: float = 30.0) -> dict:
        """Publishes `image` (and `prompt`) every half second until all outputs for its stamp arrived: the first
        messages may go out before discovery, and images are best effort."""
        deadline = time.monotonic() + timeout
        with self.arrived:
            while len(self.outputs.get(image.header.stamp.sec, {})) < len(self.OUTPUTS):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"no outputs for frame {image.header.stamp.sec} within {timeout} s")
                self.images.publish(image)
                if prompt is not None:
                    self.prompts.publish(prompt)
                self.arrived.wait(0.5)
            return self.outputs[image.header.stamp.sec]

    def close(self) -> None:
        self.executor.shutdown()
        self.thread.join()
        self.node.destroy_node()
        self.client.destroy_node()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("outputs/ros_demo"), help="folder for overlays and GIF")
    parser.add_argument("--frames", type=int, default=15)
    parser.add_argument("--checkpoint", default="", help="SAM checkpoint (default: the embedded tiny model)")
    parser.add_argument("--adapter", default="", help="GaRA adapter file")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args(argv)
    # Read by rclpy.init(): DDS traffic stays on this machine, in a domain of its own unless one is chosen.
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    os.environ.setdefault("ROS_DOMAIN_ID", str(1 + os.getpid() % 100))
    args.out.mkdir(parents=True, exist_ok=True)
    rclpy.init()
    demo = DemoClient(persist=True, checkpoint=args.checkpoint, adapter=args.adapter, device=args.device)
    overlays = []
    try:
        print(f"model: {demo.node.core.predictor.model_name} on {demo.node.core.predictor.device}")
        for i, (condition, rgb, truth) in enumerate(frames(args.frames)):
            sent = time.monotonic()
            image = array_to_image(rgb, "rgb8", Header(stamp=Time(sec=1 + i), frame_id="demo_camera"))
            outputs = demo.segment(image, prompt_for(truth) if i == 0 else None)  # the prompt persists
            round_trip_ms = (time.monotonic() - sent) * 1e3
            result = outputs["result"]
            labels = image_to_array(outputs["labels"])[..., 0]
            overlays.append(image_to_array(outputs["overlay"])[..., ::-1])  # BGR -> RGB
            imageio.imwrite(args.out / f"overlay_{i:02d}_{condition}.png", overlays[-1])
            print(f"frame {i:02d} {condition:5s}  latency {result.latency_ms:6.1f} ms"
                  f" (round trip {round_trip_ms:6.1f} ms)"
                  f"  predicted IoU {' '.join(f'{o.iou_score:.2f}' for o in result.objects)}"
                  f"  true IoU {' '.join(f'{iou(labels == o.label, truth[o.label - 1]):.2f}' for o in result.objects)}")
        imageio.mimsave(args.out / "overlays.gif", overlays, duration=400, loop=0)
        print(f"wrote {len(overlays)} overlays and overlays.gif to {args.out}")
    finally:
        demo.close()
        rclpy.shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
