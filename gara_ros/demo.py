"""Demo without camera or weights: plain SAM and GaRA-SAM as two segment_node instances on the same degraded frames.

python -m gara_ros.demo [--out outputs/ros_demo] [--frames 16] [--checkpoint FILE --adapter FILE]

Plays a moving synthetic scene through clear, fog, snow, low-contrast, noisy, blurred, JPEG and night frames
on the image topic of two nodes (namespaces `sam`: the frozen base, adapter "none"; `gara`: the same base with the
GaRA adapter), prompts every object once with its box and interior point (persist mode), and prints per frame both
models' IoU against the true masks, then the mean per condition. Writes side-by-side overlay PNGs and overlays.gif.
"""

from __future__ import annotations

import argparse
import os
import threading
import time
from pathlib import Path

import cv2
import imageio.v2 as imageio
import numpy as np
import rclpy
from builtin_interfaces.msg import Time
from geometry_msgs.msg import Point
from rclpy.executors import SingleThreadedExecutor
from rclpy.parameter import Parameter
from sensor_msgs.msg import Image
from std_msgs.msg import Header

from gara_model.build import NO_ADAPTER
from gara_model.data import corrupt, render_scene
from gara_model.data.corruptions import corruption_severity
from gara_model.data.prompts import interior_points, mask_boxes
from gara_ros.conversions import array_to_image, image_to_array
from gara_ros.msg import ObjectPrompt, SegmentPrompt, SegmentResult
from gara_ros.segment_node import IMAGE_QOS, OUTPUT_QOS, PROMPT_QOS, SegmentNode

# The conditions the frames go through, in order (ImageNet-C ones at severity 3).
CONDITIONS = ("clear", "imagenet_c/fog", "snow", "imagenet_c/contrast", "imagenet_c/gaussian_noise", "motion_blur",
              "compression", "night")
MODELS = {"sam": "SAM (frozen)", "gara": "GaRA-SAM"}  # namespace -> label


# The scene: of the first 12, the 3-object scene the frozen base segments best when clear (mean IoU 0.90 from a box
# and a point), so that what the conditions do, and what GaRA recovers of it, is not hidden by a scene the tiny base
# cannot see even in clear weather.
DEMO_SCENE_SEED = 10


def frames(count: int, size: int = 160, seed: int = DEMO_SCENE_SEED):
    """Yield (condition, RGB frame, true (O,H,W) masks): the scene drifts 1 px right per frame."""
    scene = render_scene(np.random.default_rng(seed), image_size=size, num_objects=(2, 3))
    for i in range(count):
        condition = CONDITIONS[i * len(CONDITIONS) // count]
        rgb = np.roll(scene.image, i, axis=1)
        if condition != "clear":
            rgb = corrupt(rgb, condition, corruption_severity(condition, 3), seed=seed + i)
        yield condition, rgb, np.roll(scene.masks, i, axis=2)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


def prompt_for(masks: np.ndarray) -> SegmentPrompt:
    """Per true (O,H,W) mask, as a detector plus a click would give: its box and its most interior pixel."""
    return SegmentPrompt(objects=[
        ObjectPrompt(object_id=f"obj{k}", points=[Point(x=float(x), y=float(y))],
                     labels=[ObjectPrompt.LABEL_FOREGROUND], has_box=True, box=[float(v) for v in box])
        for k, ((x, y), box) in enumerate(zip(interior_points(masks), mask_boxes(masks), strict=True))])


class DemoClient:
    """A SegmentNode in `namespace` and a client node beside it in this process, spun in a background thread; the
    client keeps the node's first result, labels and overlay per source stamp (seconds)."""

    OUTPUTS = {"result": SegmentResult, "labels": Image, "overlay": Image}

    def __init__(self, namespace: str, **params):
        self.node = SegmentNode(namespace=namespace, parameter_overrides=[Parameter(k, value=v) for k, v in params.items()])
        self.client = rclpy.create_node("gara_demo_client", namespace=namespace)
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

    def segment(self, image: Image, prompt: SegmentPrompt | None, timeout: float = 60.0) -> dict:
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


def panel(overlay_bgr: np.ndarray, title: str, ious: list[float], scale: int = 2) -> np.ndarray:
    """One model's overlay, enlarged, under a white strip with its name and the frame's mean IoU (RGB)."""
    image = cv2.resize(overlay_bgr[..., ::-1], None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)
    strip = np.full((22, image.shape[1], 3), 255, np.uint8)
    cv2.putText(strip, f"{title}  IoU {np.mean(ious):.2f}", (4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1,
                cv2.LINE_AA)
    return np.concatenate([strip, image])


def side_by_side(panels: list[np.ndarray], condition: str) -> np.ndarray:
    """Panels left to right with a gap, under a strip naming the condition (RGB)."""
    gap = np.full((panels[0].shape[0], 6, 3), 255, np.uint8)
    row = np.concatenate([p for pair in zip(panels, [gap] * len(panels)) for p in pair][:-1], axis=1)
    strip = np.full((20, row.shape[1], 3), 235, np.uint8)
    cv2.putText(strip, f"condition: {condition}", (4, 15), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    return np.concatenate([strip, row])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("outputs/ros_demo"), help="folder for overlays and GIF")
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--checkpoint", default="", help="SAM checkpoint (default: the embedded tiny model)")
    parser.add_argument("--adapter", default="", help="GaRA adapter file (default: the embedded one)")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args(argv)
    # Read by rclpy.init(): DDS traffic stays on this machine, in a domain of its own unless one is chosen.
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    os.environ.setdefault("ROS_DOMAIN_ID", str(1 + os.getpid() % 100))
    args.out.mkdir(parents=True, exist_ok=True)
    rclpy.init()
    adapters = {"sam": NO_ADAPTER, "gara": args.adapter}
    demos = {}
    pictures, per_condition = [], {}
    try:
        for namespace in MODELS:
            demos[namespace] = DemoClient(namespace, persist=True, checkpoint=args.checkpoint,
                                          adapter=adapters[namespace], device=args.device)
            print(f"{MODELS[namespace]}: {demos[namespace].node.core.predictor.model_name} "
                  f"on {demos[namespace].node.core.predictor.device}")
        for i, (condition, rgb, truth) in enumerate(frames(args.frames)):
            image = array_to_image(rgb, "rgb8", Header(stamp=Time(sec=1 + i), frame_id="demo_camera"))
            panels, line = [], f"frame {i:02d} {condition:26s}"
            for namespace, demo in demos.items():
                outputs = demo.segment(image, prompt_for(truth) if i == 0 else None)  # the prompt persists
                labels = image_to_array(outputs["labels"])[..., 0]
                ious = [iou(labels == o.label, truth[o.label - 1]) for o in outputs["result"].objects]
                per_condition.setdefault((condition, namespace), []).extend(ious)
                panels.append(panel(image_to_array(outputs["overlay"]), MODELS[namespace], ious))
                line += f"  {MODELS[namespace]} true IoU {' '.join(f'{v:.2f}' for v in ious)}" \
                        f" ({outputs['result'].latency_ms:.0f} ms)"
            print(line)
            pictures.append(side_by_side(panels, condition))
            imageio.imwrite(args.out / f"overlay_{i:02d}_{condition.replace('/', '_')}.png", pictures[-1])
        imageio.mimsave(args.out / "overlays.gif", pictures, duration=600, loop=0)
        print("\nmean true IoU per condition:")
        for condition in dict.fromkeys(c for c, _ in per_condition):
            print(f"  {condition:26s}" + "".join(f"  {MODELS[n]} {np.mean(per_condition[(condition, n)]):.2f}"
                                                  for n in MODELS))
        print(f"wrote {len(pictures)} side-by-side overlays and overlays.gif to {args.out}")
    finally:
        for demo in demos.values():
            demo.close()
        rclpy.shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
