"""Installs gara_model (pure PyTorch). gara_ros is built by CMakeLists.txt (colcon or scripts/setup.sh)."""
from setuptools import find_packages, setup

setup(
    name="gara",
    version="0.1.0",
    description="GaRA-SAM: robust promptable segmentation with gated-rank adapters on a frozen SAM",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=["gara_model", "gara_model.*"]),
    package_data={"gara_model": ["assets/*.safetensors"]},
    install_requires=[
        # torch/torchvision are not pinned: users bring the build that matches their CUDA.
        "torch>=2.1",
        "torchvision>=0.16",
        "segment-anything>=1.0",
        "safetensors>=0.4",
        "numpy>=1.24",
        "opencv-python-headless>=4.8",
        "pyyaml>=6.0",
        "tqdm>=4.60",
        "pycocotools>=2.0.7",
        "albumentations>=2.0,<2.1",
        "imagecorruptions-imaug>=1.1.5",
        "scipy>=1.10",
        "scikit-learn>=1.3",  # gate adaptivity: the linear classifier that reads the condition from the gates
        "tensorboard>=2.14",
        "matplotlib>=3.7",
        "imageio>=2.30",
        "Pillow>=9.0",
        "rosbags>=0.11",  # bags without ROS: python -m gara_ros.replay
    ],
    extras_require={
        # launch_testing (ROS 2's launch tests, tests/ros/test_launch.py where installed) does not load under pytest
        # 8.4+; mcap, mcap-ros2-support: Foxglove's own MCAP reader, to check that the replay's bags open there too
        "dev": ["pytest>=7,<8.4", "mcap>=1.2", "mcap-ros2-support>=0.5"],
        # ONNX export and the onnxruntime backend (docs/deployment.md); scripts/setup.sh installs one of the two.
        # onnxruntime and onnxruntime-gpu install the same module: install one. Versions with numpy 2 wheels.
        "onnx": ["onnx>=1.17", "onnxscript>=0.5", "onnxruntime>=1.20"],
        "onnx-gpu": ["onnx>=1.17", "onnxscript>=0.5", "onnxruntime-gpu>=1.20"],
    },
)
