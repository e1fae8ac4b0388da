"""The files gara_ros installs under share/gara_ros (msg/, config/), found without ROS: in this source tree, or
in an install (colcon on a robot) from where this module lies or from AMENT_PREFIX_PATH. No rclpy."""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE = "gara_ros"


def share_path(relative: str) -> Path:
    """`relative` (e.g. "msg", "config/gara.yaml") in the source tree, else in the share/gara_ros folder of an
    install prefix above this module (lib/python3.X/site-packages/gara_ros, or local/lib/... on Debian), else in one
    on AMENT_PREFIX_PATH; FileNotFoundError naming the places looked in."""
    here = Path(__file__).resolve().parent
    places = [here.parent / relative]  # the repository root
    places += [prefix / "share" / PACKAGE / relative for prefix in here.parents]
    places += [Path(prefix) / "share" / PACKAGE / relative
               for prefix in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if prefix]
    for place in places:
        if place.exists():
            return place
    raise FileNotFoundError(f"gara_ros's {relative} not found in the source tree ({places[0]}), in an install "
                            f"above {here} or on AMENT_PREFIX_PATH")
