"""ROS 2 glue for GaRA-SAM: message conversions and the segmentation node.

The generated messages (gara_ros.msg) are installed by CMake: next to these modules (colcon, a robot), or into
the venv's site-packages with an __init__.py that adds this source folder to the package (scripts/setup.sh, the
GARA_EDITABLE install). extend_path merges every gara_ros folder on sys.path, so from the repository root this
source tree and the installed messages also form one package.
"""
from pkgutil import extend_path

__path__ = extend_path(__path__, __name__)
