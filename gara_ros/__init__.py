"""ROS 2 glue for GaRA-SAM: message conversions and the segmentation node.

The generated messages (gara_ros.msg) are installed by CMake, either next to this
file (colcon) or into the venv's site-packages (scripts/setup_ros.sh). extend_path
merges every gara_ros directory on sys.path, so the source tree and the installed
messages form one package.
"""
from pkgutil import extend_path

__path__ = extend_path(__path__, __name__)
