"""python -m gara_ros.demo runs on a fresh machine, from any directory: no camera, no weights."""

import os
import subprocess
import sys


def test_demo_writes_overlays_gif_and_latencies(tmp_path):
    run = subprocess.run([sys.executable, "-m", "gara_ros.demo", "--frames", "3", "--out", "demo"],
                         capture_output=True, text=True, timeout=120, cwd=tmp_path,
                         env={**os.environ, "ROS_DOMAIN_ID": str(int(os.environ["ROS_DOMAIN_ID"]) % 101 + 1)})
    assert run.returncode == 0, run.stderr
    frames = [line for line in run.stdout.splitlines() if line.startswith("frame ")]
    assert len(frames) == 3 and all("latency" in line and "true IoU" in line for line in frames)
    assert sorted(p.name for p in (tmp_path / "demo").iterdir()) == [
        "overlay_00_clear.png", "overlay_01_fog.png", "overlay_02_snow.png", "overlays.gif"]
