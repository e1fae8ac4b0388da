"""config/gara.yaml documents exactly the parameters the node declares, with the same defaults; they reach the model."""

from pathlib import Path

import pytest
import yaml
from rclpy.parameter import Parameter

from gara_ros.segment_node import PARAMETERS, SegmentNode

CONFIG = Path(__file__).parents[2] / "config" / "gara.yaml"


def test_params_file_matches_declared_defaults():
    params = yaml.safe_load(CONFIG.read_text())["/**"]["ros__parameters"]
    assert params == {name: default for name, (default, _) in PARAMETERS.items()}


def test_node_starts_from_the_params_file(ros):
    node = SegmentNode(cli_args=["--ros-args", "--params-file", str(CONFIG), "-p", "persist:=true"])
    try:
        assert node.p == {name: default for name, (default, _) in PARAMETERS.items()} | {"persist": True}
    finally:
        node.destroy_node()


def test_image_size_reaches_the_encoder(ros):
    node = SegmentNode(parameter_overrides=[Parameter("image_size", value=64)])
    try:
        assert node.core.predictor.model.image_encoder.img_size == 64
    finally:
        node.destroy_node()
    with pytest.raises(ValueError, match="image_size"):
        SegmentNode(parameter_overrides=[Parameter("image_size", value=100)])  # not a multiple of the patch size
