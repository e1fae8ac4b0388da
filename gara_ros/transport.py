"""Fast DDS transport profiles for large images: what a profile name means, and the environment that loads it.

Used by launch/segment.launch.py (fastdds_profile:=...) and the node benchmarks. No rclpy.
"""

from __future__ import annotations

import os
from pathlib import Path

# profile name -> profiles file in the package's config/ folder; None = Fast DDS's default transports.
PROFILES = {"default": None, "shm": "fastdds_shm.xml"}
# Fast DDS 3 (Kilted) reads the first variable, Fast DDS 2 (Humble, Jazzy) the second.
PROFILE_VARIABLES = ("FASTDDS_DEFAULT_PROFILES_FILE", "FASTRTPS_DEFAULT_PROFILES_FILE")


def profile_env(name: str, config_dir: str | os.PathLike) -> dict[str, str]:
    """The environment variables that make Fast DDS 2 and 3 load profile `name` from `config_dir`; {} for the
    default transports (an empty variable would be an error for Fast DDS)."""
    if name not in PROFILES:
        raise ValueError(f"unknown Fast DDS profile {name!r}; choose one of: {', '.join(PROFILES)}")
    if PROFILES[name] is None:
        return {}
    path = str(Path(config_dir) / PROFILES[name])
    return {variable: path for variable in PROFILE_VARIABLES}
