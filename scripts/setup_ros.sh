#!/usr/bin/env bash
# Make the ROS 2 side usable in the project venv without a system ROS 2:
# installs the ROS 2 wheels of one distribution from PyPI, works around their packaging bug,
# and builds our messages (msg/) into the venv with plain cmake (the GARA_EDITABLE install:
# gara_ros's modules are used in place from this source tree, from any directory).
# Idempotent; a second run only re-checks. Called by scripts/setup.sh.
#   ROS_DISTRO  kilted (default) or jazzy. The two pin different rclpy wheels, so each needs its own
#               venv: VENV defaults to .venv for kilted and .venv-<distro> otherwise.
#   --venv-path  only prints that default (or fails for a distribution without wheels).
# On a robot with ROS 2 installed use `colcon build` instead (docs/ros.md).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DISTRO="${ROS_DISTRO:-kilted}"
case "$DISTRO" in
  kilted) DISTRO_BUILD_WHEELS=(ament-cmake-ros-core) ;;
  # Jazzy's rosidl_generator_py needs python_cmake_module, and its ament_cmake_ros the test helpers.
  jazzy) DISTRO_BUILD_WHEELS=(python-cmake-module ament-cmake-ros ament-cmake-gmock ament-cmake-gtest
           ament-cmake-pytest) ;;
  *) echo "setup_ros.sh: ROS_DISTRO=$DISTRO: PyPI has ROS 2 wheels for jazzy and kilted only. Set ROS_DISTRO to" \
          "one of them, or GARA_SKIP_ROS=1 and build with colcon against your ROS 2 install (docs/ros.md)" >&2
     exit 1 ;;
esac
[ "$DISTRO" = kilted ] && DEFAULT_VENV="$REPO/.venv" || DEFAULT_VENV="$REPO/.venv-$DISTRO"
[ "${1:-}" = --venv-path ] && { echo "$DEFAULT_VENV"; exit 0; }
VENV="${VENV:-$DEFAULT_VENV}"
BUILD_DIR="${GARA_ROS_BUILD_DIR:-$VENV/build/gara_ros_msgs}"  # tied to the venv: CMake caches its paths
PY="$VENV/bin/python"
[ -x "$PY" ] || { echo "setup_ros.sh: no python at $PY (set VENV)" >&2; exit 1; }

# One distribution per venv: installing another's wheels over it would mix two rclpy versions.
MARKER="$VENV/ros_distro"
if [ -f "$MARKER" ] && [ "$(cat "$MARKER")" != "$DISTRO" ]; then
  echo "setup_ros.sh: $VENV holds ROS 2 $(cat "$MARKER"), not $DISTRO; distributions cannot share a venv:" \
       "use another VENV (default for $DISTRO: $DEFAULT_VENV)" >&2
  exit 1
fi

RUNTIME_WHEELS=(rclpy rmw-fastrtps-cpp sensor-msgs std-msgs geometry-msgs std-srvs visualization-msgs
  diagnostic-msgs rcl-interfaces lifecycle-msgs)
# The build wheels don't declare all their dependencies, hence the explicit list.
BUILD_WHEELS=(ament-cmake rosidl-default-generators ament-package ament-cmake-include-directories
  rosidl-core-generators "${DISTRO_BUILD_WHEELS[@]}")
echo "setup_ros.sh: installing ROS 2 $DISTRO wheels into $VENV"
# ros-<distro>-<name>: meta-packages pinning the distribution's wheel of each package
# numpy: rosidl_generator_py's headers; catkin-pkg: ament_package reads package.xml with it
"$PY" -m pip install -q numpy catkin-pkg "${RUNTIME_WHEELS[@]/#/ros-$DISTRO-}" "${BUILD_WHEELS[@]/#/ros-$DISTRO-}"
echo "$DISTRO" > "$MARKER"

# Packaging bug (Kilted and Jazzy): *Export.cmake files hard-code the wheel builder's Python and
# numpy include dirs; point them at this venv's or CMake rejects the imported targets.
read -r PY_INC NP_INC < <("$PY" -c 'import sysconfig, numpy; print(sysconfig.get_paths()["include"], numpy.get_include())')
{ grep -l '/opt/python/cp311-cp311' "$VENV"/share/*/cmake/*Export.cmake 2>/dev/null || true; } | while read -r f; do
  sed -i -e "s#/opt/python/cp311-cp311/lib/python3.11/site-packages/numpy/_core/include#$NP_INC#g" \
         -e "s#/opt/python/cp311-cp311/include/python3.11#$PY_INC#g" "$f"
done

mkdir -p "$BUILD_DIR"
export AMENT_PREFIX_PATH="$VENV${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}"  # where rosidl finds the typesupports
echo "setup_ros.sh: building gara_ros messages in $BUILD_DIR"
cmake -S "$REPO" -B "$BUILD_DIR" -Wno-dev \
  -DCMAKE_INSTALL_PREFIX="$VENV" -DCMAKE_PREFIX_PATH="$VENV" \
  -DPython3_EXECUTABLE="$PY" -DBUILD_TESTING=OFF -DGARA_EDITABLE=ON >"$BUILD_DIR.log" 2>&1 \
  || { cat "$BUILD_DIR.log" >&2; exit 1; }
cmake --build "$BUILD_DIR" -j2 >>"$BUILD_DIR.log" 2>&1 || { tail -50 "$BUILD_DIR.log" >&2; exit 1; }
cmake --install "$BUILD_DIR" >>"$BUILD_DIR.log" 2>&1 || { tail -50 "$BUILD_DIR.log" >&2; exit 1; }

(cd / && "$PY" -c 'import rclpy, gara_ros.segment_node; from gara_ros.msg import SegmentPrompt, SegmentResult') \
  || { echo "setup_ros.sh: messages built but gara_ros not importable from another directory" >&2; exit 1; }
echo "setup_ros.sh: done (ROS 2 $DISTRO: rclpy, gara_ros and its messages importable from $VENV in any directory)"
