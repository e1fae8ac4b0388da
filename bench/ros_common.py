"""Shared parts of the node benchmarks: segment_node in its own process, its environment, camera frames.

    .venv/bin/python -m bench.ros_common --log node.json [--param name=json-value ...]
runs a segment_node that keeps every processed frame's stage times (ms) and writes them to --log on SIGINT.
The benchmarks start it that way (`start_node`), with ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST and their own
ROS_DOMAIN_ID, so that transport settings (FASTDDS_DEFAULT_PROFILES_FILE) apply per process.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

from gara_ros.transport import PROFILE_VARIABLES, profile_env, ros_distro

REPO = Path(__file__).resolve().parents[1]
NODE = "/segment_node"


def ros_env(domain_id: int, transport: str) -> dict[str, str]:
    """Environment for a ROS process of a benchmark: this machine only, its own domain, the transport profile."""
    env = dict(os.environ, ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST", ROS_DOMAIN_ID=str(domain_id))
    for variable in PROFILE_VARIABLES:
        env.pop(variable, None)
    return env | profile_env(transport, REPO / "config")


def use_env(env: dict[str, str]) -> None:
    """Applies `env` to this process; call before rclpy is imported."""
    if "rclpy" in sys.modules:
        raise RuntimeError("use_env must run before rclpy is imported")
    os.environ.clear()
    os.environ.update(env)


def ros_info() -> str:
    """rclpy version, distribution and middleware."""
    middleware = os.environ.get("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp (default)")
    return f"rclpy {importlib.metadata.version('ros-rclpy')} ({ros_distro() or '?'}), {middleware}"


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def camera_frame(width: int, height: int, index: int = 0) -> np.ndarray:
    """(H,W,3) uint8 BGR: a synthetic scene (gara_model.data.render_scene) drifting 4 px per frame."""
    from gara_model.data import render_scene

    scene = render_scene(np.random.default_rng(0), image_size=256, num_objects=(3, 4)).image
    return np.roll(cv2.resize(scene[..., ::-1], (width, height), interpolation=cv2.INTER_LINEAR), 4 * index, axis=1)


def start_node(env: dict[str, str], params: dict[str, object]) -> tuple[subprocess.Popen, Path]:
    """A segment_node process with `params`; returns it and the file its stage log goes to."""
    log = Path(tempfile.mkstemp(prefix="gara_node_", suffix=".json")[1])
    args = [sys.executable, "-m", "bench.ros_common", "--log", str(log)]
    for name, value in params.items():
        args += ["--param", f"{name}={json.dumps(value)}"]
    return subprocess.Popen(args, cwd=REPO, env=env), log


def stop_node(process: subprocess.Popen, log: Path, timeout: float = 30.0) -> dict:
    """SIGINT, wait, and the node's log (see `serve`)."""
    process.send_signal(signal.SIGINT)
    process.wait(timeout)
    text = log.read_text()
    log.unlink()
    if not text:
        raise RuntimeError(f"segment_node (exit code {process.returncode}) wrote no log")
    return json.loads(text)


def rss_mb(pid: int) -> float:
    """Resident set size of process `pid` in MB (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def overhead_ms(frame: dict, kind: str = "") -> float:
    """The node's own time for one logged frame: convert + encode + publish (wall; kind "cpu_": CPU time)."""
    return sum(frame[kind + stage] for stage in ("convert", "encode", "publish"))


def median_ms(values: list[float]) -> str:
    return f"{statistics.median(values):.1f}" if values else "-"


def serve(log: Path, params: dict[str, object]) -> None:
    """Spins a segment_node until SIGINT; then writes its frame counts and, per processed frame ("frames"): stamp_ns,
    the newest received stamp when the job started and when its outputs were published, its stage times in ms
    (wall; "cpu_<stage>": the worker thread's CPU time)."""
    import rclpy
    from rclpy.parameter import Parameter

    from gara_ros.segment_node import SegmentNode, spin_until_shutdown

    class TimedNode(SegmentNode):
        def __init__(self, **kwargs):
            self.log = []  # before SegmentNode.__init__, which starts the worker
            super().__init__(**kwargs)

        def publish(self, job) -> None:
            newest_at_start, processed = self.core.frames.latest().stamp_ns, self.core.stats().processed
            super().publish(job)
            stats = self.core.stats()
            if stats.processed > processed:
                self.log.append({"stamp_ns": job.frame.stamp_ns, "newest_at_start_ns": newest_at_start,
                                 "newest_at_publish_ns": self.core.frames.latest().stamp_ns, **stats.stage_ms,
                                 **{f"cpu_{k}": v for k, v in stats.stage_cpu_ms.items()}})

    rclpy.init()
    node = TimedNode(parameter_overrides=[Parameter(k, value=v) for k, v in params.items()])
    spin_until_shutdown(node)
    stats = node.core.stats()
    log.write_text(json.dumps({"received": stats.received, "replaced_in_slot": node.slot.dropped,
                               "errors": stats.failed, "frames": node.log}))


def main() -> None:
    p = argparse.ArgumentParser(description="segment_node keeping per-frame stage times (for bench/node_*.py)")
    p.add_argument("--log", type=Path, required=True)
    p.add_argument("--param", action="append", default=[], help="name=value, the value in JSON")
    args = p.parse_args()
    serve(args.log, {k: json.loads(v) for k, v in (item.split("=", 1) for item in args.param)})


if __name__ == "__main__":
    main()
