"""python -m gara_ros.demo runs on a fresh machine, from any directory: no camera, no weights."""

import os
import re
import subprocess
import sys

import imageio.v2 as imageio


def test_demo_shows_plain_sam_and_gara_sam_side_by_side_with_their_true_iou(tmp_path):
    run = subprocess.run([sys.executable, "-m", "gara_ros.demo", "--frames", "3", "--out", "demo"],
                         capture_output=True, text=True, timeout=180, cwd=tmp_path,
                         env={**os.environ, "ROS_DOMAIN_ID": str(int(os.environ["ROS_DOMAIN_ID"]) % 101 + 1)})
    assert run.returncode == 0, run.stderr
    assert "SAM (frozen): SAM (embed 96" in run.stdout and "GaRA-SAM: GaRA-SAM (embed 96" in run.stdout
    frames = [line for line in run.stdout.splitlines() if line.startswith("frame ")]
    assert [line.split()[2] for line in frames] == ["clear", "snow", "motion_blur"]  # 8 conditions over 3 frames
    for line in frames:
        for model in ("SAM (frozen)", "GaRA-SAM"):
            ious = re.search(re.escape(model) + r" true IoU ([\d. ]+) \(", line).group(1).split()
            assert len(ious) >= 2 and all(0.0 <= float(v) <= 1.0 for v in ious), line
    assert "mean true IoU per condition:" in run.stdout
    assert sorted(p.name for p in (tmp_path / "demo").iterdir()) == [
        "overlay_00_clear.png", "overlay_01_snow.png", "overlay_02_motion_blur.png", "overlays.gif"]
    gif = imageio.mimread(tmp_path / "demo" / "overlays.gif")
    assert len(gif) == 3 and gif[0].shape[1] == 2 * 320 + 6  # two enlarged 160 px panels and the gap
