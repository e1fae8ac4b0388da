"""Fast DDS transport profiles for large images: what a profile name means, and the environment that loads it on
this ROS 2 distribution.

Used by launch/segment.launch.py (fastdds_profile:=...) and the node benchmarks. No rclpy.
"""

from __future__ import annotations

import importlib.metadata
import os
from pathlib import Path

# profile name -> profiles file in the package's config/ folder; None = Fast DDS's default transports.
PROFILES = {"default": None, "shm": "fastdds_shm.xml"}
# The variable naming the profiles file: Fast DDS 3 (Kilted and later) reads the first and logs that the second is
# deprecated; Fast DDS 2 (Humble, Iron, Jazzy) reads only the second.
PROFILE_VARIABLES = ("FASTDDS_DEFAULT_PROFILES_FILE", "FASTRTPS_DEFAULT_PROFILES_FILE")
FAST_DDS_2_DISTROS = frozenset({"humble", "iron", "jazzy"})
RCLPY_DISTROS = {3: "humble", 7: "jazzy", 9: "kilted"}  # rclpy's major version -> ROS 2 distribution


def ros_distro() -> str:
    """This environment's ROS 2 distribution: $ROS_DISTRO (set by a ROS installation's setup files), else that of
    the rclpy wheel (the venv of scripts/setup.sh), else ""."""
    if os.environ.get("ROS_DISTRO"):
        return os.environ["ROS_DISTRO"]
    try:
        version = importlib.metadata.version("ros-rclpy")
    except importlib.metadata.PackageNotFoundError:
        return ""
    return RCLPY_DISTROS.get(int(version.split(".")[0]), "")


def profile_variable(distro: str) -> str:
    """The profiles-file variable that `distro`'s Fast DDS reads; Fast DDS 3's for a newer or unknown one."""
    return PROFILE_VARIABLES[1] if distro in FAST_DDS_2_DISTROS else PROFILE_VARIABLES[0]


def profile_env(name: str, config_dir: str | os.PathLike, distro: str | None = None) -> dict[str, str]:
    """The environment that makes the Fast DDS of `distro` (default: `ros_distro()`) load profile `name` from
    `config_dir`: one variable; {} for the default transports (an empty variable would be an error for Fast DDS)."""
    if name not in PROFILES:
        raise ValueError(f"unknown Fast DDS profile {name!r}; choose one of: {', '.join(PROFILES)}")
    if PROFILES[name] is None:
        return {}
    return {profile_variable(ros_distro() if distro is None else distro): str(Path(config_dir) / PROFILES[name])}
