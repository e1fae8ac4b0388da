"""gara_ros finds its msg/ and config/ without ROS: from this source tree, and as installed by colcon
(<prefix>/lib/python3.X/site-packages/gara_ros next to <prefix>/share/gara_ros)."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

from gara_ros.share import share_path

REPO = Path(__file__).parents[2]


def test_source_tree():
    assert share_path("msg") == REPO / "msg" and share_path("config/gara.yaml") == REPO / "config" / "gara.yaml"


def test_installed_layout(tmp_path):
    """The layout CMakeLists.txt installs (modules into site-packages, msg/ and config/ into share/gara_ros); run
    from elsewhere, with this source tree off the path: the bag type store registers our messages from there."""
    prefix = tmp_path / "install"
    package = prefix / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages" / "gara_ros"
    shutil.copytree(REPO / "gara_ros", package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(REPO / "msg", prefix / "share" / "gara_ros" / "msg")
    shutil.copytree(REPO / "config", prefix / "share" / "gara_ros" / "config")
    code = ("import gara_ros.share as share, gara_ros.bag as bag; print(share.__file__);"
            " print(share.share_path('msg')); print(share.share_path('config/gara.yaml'));"
            " print(sorted(t for t in bag.typestore().types if t.startswith('gara_ros')))")
    env = dict(os.environ, PYTHONPATH=str(package.parent))
    env.pop("AMENT_PREFIX_PATH", None)
    run = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0, run.stderr
    module, msg, config, types = run.stdout.splitlines()
    assert Path(module) == package / "share.py"
    assert (Path(msg), Path(config)) == (prefix / "share/gara_ros/msg", prefix / "share/gara_ros/config/gara.yaml")
    assert types == str(["gara_ros/msg/ObjectPrompt", "gara_ros/msg/ObjectResult", "gara_ros/msg/SegmentPrompt",
                         "gara_ros/msg/SegmentResult"])
