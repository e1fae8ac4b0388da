"""GaRA-SAM segmentation node, optionally with RViz showing the overlay and mask.

ros2 launch gara_ros segment.launch.py image:=/camera/image_raw checkpoint:=/models/sam_vit_b.pth rviz:=true
The node comes up active; autostart:=false leaves it unconfigured for a lifecycle manager.
fastdds_profile:=shm gives the node config/fastdds_shm.xml (large shared-memory transport for big images) through
the variable this distribution's Fast DDS reads (gara_ros.transport); the camera driver must use the same profile
for it to take effect.
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from gara_ros.transport import PROFILES, profile_env

SHARE = get_package_share_directory("gara_ros")
# Node parameters settable from the command line; "" keeps the params file's value.
OVERRIDES = {
    "checkpoint": "SAM checkpoint file (default: the embedded tiny model)",
    "adapter": "GaRA adapter file (default: plain SAM)",
    "device": "auto, cpu, cuda or cuda:N",
    "backend": "torch or onnxruntime (docs/deployment.md)",
    "onnx_dir": "onnxruntime: directory of python -m gara_model.export (default: exported once into the cache)",
}


def segment_node(context):
    overrides = {name: LaunchConfiguration(name).perform(context) for name in OVERRIDES}
    autostart = LaunchConfiguration("autostart").perform(context) == "true"
    env = profile_env(LaunchConfiguration("fastdds_profile").perform(context), os.path.join(SHARE, "config"))
    return [Node(
        package="gara_ros", executable="segment_node", name="segment_node", output="screen",
        namespace=LaunchConfiguration("namespace"), additional_env=env,
        parameters=[LaunchConfiguration("params_file"), {k: v for k, v in overrides.items() if v},
                    {"autostart": autostart}],
        remappings=[("image", LaunchConfiguration("image"))],
    )]


def generate_launch_description():
    return LaunchDescription([
        DeclareLaunchArgument("image", default_value="/camera/image_raw", description="input image topic"),
        DeclareLaunchArgument("params_file", default_value=os.path.join(SHARE, "config", "gara.yaml"),
                              description="node parameters"),
        *(DeclareLaunchArgument(name, default_value="", description=text) for name, text in OVERRIDES.items()),
        DeclareLaunchArgument("namespace", default_value="", description="namespace of the node and its outputs"),
        DeclareLaunchArgument("autostart", default_value="true", choices=["true", "false"],
                              description="configure and activate the (lifecycle) node at start-up; false: leave "
                                          "it unconfigured for a lifecycle manager"),
        DeclareLaunchArgument("fastdds_profile", default_value="default", choices=list(PROFILES),
                              description="Fast DDS transports of the node: default, or shm (config/fastdds_shm.xml)"),
        DeclareLaunchArgument("rviz", default_value="false", description="open RViz with rviz/gara.rviz"),
        OpaqueFunction(function=segment_node),
        Node(package="rviz2", executable="rviz2", arguments=["-d", os.path.join(SHARE, "rviz", "gara.rviz")],
             condition=IfCondition(LaunchConfiguration("rviz"))),
    ])
