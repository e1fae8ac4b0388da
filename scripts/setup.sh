#!/usr/bin/env bash
# One-time set-up of a fresh clone: .venv with PyTorch, gara_model (editable) and its test tools,
# then the ROS 2 side (rclpy wheels + our messages, scripts/setup_ros.sh). Idempotent.
#   TORCH_SPEC  what pip installs for PyTorch first (default: the pair that works on the project's
#               CI machines); set e.g. TORCH_SPEC="torch torchvision" for your own CUDA build.
#   ROS_DISTRO  the ROS 2 wheels: kilted (default, into .venv) or jazzy (into .venv-jazzy).
#   GARA_EXTRAS  the extras of gara_model to install into either venv (default: dev,onnx; tests/ros runs the node on
#               the onnxruntime backend too). On a CUDA machine dev,onnx-gpu brings onnxruntime-gpu instead of
#               onnxruntime: uninstall onnxruntime first, they share one module.
#   GARA_SKIP_ROS=1  skips the ROS 2 part (model-only machines).
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [ "${GARA_SKIP_ROS:-0}" = 1 ]; then
  export VENV="${VENV:-$REPO/.venv}"
else  # one venv per ROS 2 distribution; fails here, before any install, for one without wheels
  VENV="${VENV:-$("$REPO/scripts/setup_ros.sh" --venv-path)}"
  export VENV
fi
PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null || PYTHON=python3
TORCH_SPEC="${TORCH_SPEC:-torch==2.14.1 torchvision==0.29.1}"

[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
PY="$VENV/bin/python"
"$PY" -m pip install -q --upgrade pip
if ! "$PY" -c 'import torch, torchvision' 2>/dev/null; then
  echo "setup.sh: installing $TORCH_SPEC (large download on a new machine)"
  # shellcheck disable=SC2086
  "$PY" -m pip install -q $TORCH_SPEC
fi
echo "setup.sh: installing gara_model and its dependencies"
"$PY" -m pip install -q -e "$REPO[${GARA_EXTRAS:-dev,onnx}]"
if [ "${GARA_SKIP_ROS:-0}" != 1 ]; then
  "$REPO/scripts/setup_ros.sh"
fi
echo "setup.sh: done ($("$PY" -c 'import torch; print("torch", torch.__version__, "cuda" if torch.cuda.is_available() else "cpu")'))"
