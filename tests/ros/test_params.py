"""config/gara.yaml documents exactly the parameters the node declares, with the same defaults; they reach the model."""

from pathlib import Path

import numpy as np
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


def test_backend_onnxruntime_runs_the_exported_model_in_the_node(ros):
    """backend: onnxruntime without onnx_dir exports the configured (embedded) model once and gives the torch masks."""
    from gara_model.prompts import ObjectPrompt
    from gara_ros.conversions import array_to_image
    from gara_ros.core import Job
    from gara_ros.frames import Frame
    from tests.ros.helpers import scene

    frame = Frame(array_to_image(scene(), "rgb8"), 1)
    job = Job(frame, [ObjectPrompt("square", points=np.array([[45.0, 30.0]]), labels=np.array([1])),
                      ObjectPrompt("box", box=np.array([25.0, 15.0, 65.0, 50.0]))])
    outputs = {}
    for backend in ("torch", "onnxruntime"):
        node = SegmentNode(parameter_overrides=[Parameter("backend", value=backend), Parameter("device", value="cpu")])
        try:
            assert node.core.predictor.backend.name == backend
            outputs[backend] = node.core.process(job, {"labels"})
        finally:
            node.destroy_node()
    torch_out, onnx_out = outputs["torch"], outputs["onnxruntime"]
    assert (torch_out.images["labels"] > 0).any()
    assert np.allclose(onnx_out.scores, torch_out.scores, atol=1e-4)
    assert (onnx_out.images["labels"] != torch_out.images["labels"]).mean() < 1e-3
    assert onnx_out.high_rank_share == torch_out.high_rank_share
    assert onnx_out.mean_active_components == torch_out.mean_active_components
    with pytest.raises(ValueError, match="backend must be one of"):
        SegmentNode(parameter_overrides=[Parameter("backend", value="tensorrt")])
