"""Parameters: config/gara.yaml documents exactly the declared ones with the same defaults; they reach the model;
run-time ones apply to the next frame when set as `ros2 param set` does, the others are refused with the reason."""

from pathlib import Path

import numpy as np
import yaml
from rclpy.parameter import Parameter

from gara_model.predictor import ObjectPrompt
from gara_ros.conversions import array_to_image
from gara_ros.core import Job
from gara_ros.frames import Frame
from gara_ros.segment_node import PARAMETERS, RUNTIME_PARAMETERS, SETTINGS, SegmentNode
from tests.ros.harness import wait_for
from tests.ros.helpers import point_object, prompt, scene
from tests.ros.test_node import stamps

CONFIG = Path(__file__).parents[2] / "config" / "gara.yaml"


def test_params_file_matches_declared_defaults():
    params = yaml.safe_load(CONFIG.read_text())["/**"]["ros__parameters"]
    assert params == {name: default for name, (default, _) in PARAMETERS.items()}


def test_every_core_setting_but_the_buffer_size_and_depth_input_is_a_runtime_parameter():
    assert RUNTIME_PARAMETERS <= set(PARAMETERS) and SETTINGS <= set(PARAMETERS)
    # the frame ring buffers are sized once, and the depth subscriptions made once, by configure / activate
    assert SETTINGS - RUNTIME_PARAMETERS == {"buffer_size", "use_depth"}


def test_node_starts_from_the_params_file(ros):
    node = SegmentNode(cli_args=["--ros-args", "--params-file", str(CONFIG), "-p", "persist:=true"])
    try:
        assert node.lifecycle_state == "active"  # autostart
        assert node.p == {name: default for name, (default, _) in PARAMETERS.items()} | {"persist": True}
    finally:
        node.destroy_node()


def test_image_size_reaches_the_encoder(ros):
    node = SegmentNode(parameter_overrides=[Parameter("image_size", value=64)])
    try:
        assert node.core.predictor.model.image_encoder.img_size == 64
    finally:
        node.destroy_node()
    node = SegmentNode(parameter_overrides=[Parameter("image_size", value=100)])  # not a multiple of the patch size
    try:
        assert node.lifecycle_state == "unconfigured" and node.core is None
    finally:
        node.destroy_node()


def area_for(h, threshold: float) -> int:
    """The tiny model's mask area for the cup point on scene() at this logit threshold."""
    h.node.core.predictor.set_image(scene())
    cup = ObjectPrompt("cup", np.array([[45.0, 30.0]]), np.array([1]))
    return int(h.node.core.predictor.predict([cup], mask_threshold=threshold).masks.sum())


def test_runtime_parameters_apply_to_the_next_frame(harness):
    h = harness(persist=True)
    h.send_image(scene(), t=1)
    h.prompts.publish(prompt(point_object("cup", 45, 30)))
    (first,) = h.results_after(0)[0].objects
    assert wait_for(lambda: stamps(h.received["overlay"]) == [1])

    assert all(r.successful for r in h.set_params(mask_threshold=2.0, overlay=False))
    assert h.node.core.settings.mask_threshold == 2.0 and h.node.get_parameter("overlay").value is False
    h.send_image(scene(), t=2)
    tighter = h.results_after(1)[1].objects[0].area
    h.settle()
    assert first.area == area_for(h, 0.0) and tighter == area_for(h, 2.0) < first.area  # a smaller mask (658 -> 548)

    assert h.set_params(overlay=True)[0].successful
    h.send_image(scene(), t=3)
    # overlays come in order on one reliable topic: once frame 3's is here, frame 2's would have come before it
    assert wait_for(lambda: stamps(h.received["overlay"]) == [1, 3]) and len(h.results_after(2)) == 3

    assert h.set_params(persist=False)[0].successful  # leaving persist drops the persisted prompt
    h.send_image(scene(), t=4)
    assert h.set_params(persist=True)[0].successful
    h.send_image(scene(), t=5)
    h.settle()
    assert stamps(h.received["result"]) == [1, 2, 3] and (h.stats().received, h.stats().processed) == (5, 3)


def test_configure_time_parameters_and_bad_values_are_refused_with_the_reason(harness):
    h = harness()
    (result,) = h.set_params(checkpoint="/models/sam_vit_b.pth")
    assert not result.successful
    assert result.reason.startswith("checkpoint: read by configure: settable only while the node is unconfigured")
    assert "this node is active" in result.reason and "mask_threshold" in result.reason  # lists what may change
    assert h.node.get_parameter("checkpoint").value == ""
    (result,) = h.set_params(stamp_tolerance=-1.0)
    assert (result.successful, result.reason) == (False, "stamp_tolerance must be >= 0, got -1.0")
    assert h.node.get_parameter("stamp_tolerance").value == h.node.core.settings.stamp_tolerance == 0.05
    (result,) = h.set_params(max_objects=0)
    assert (result.successful, result.reason) == (False, "max_objects must be >= 1, got 0")
    assert h.node.core.settings.max_objects == 16


def test_backend_onnxruntime_runs_the_exported_model_in_the_node(ros, capfd):
    """backend: onnxruntime without onnx_dir exports the configured (embedded) model once and gives the torch masks;
    the backend is read by configure; an unknown one leaves the node unconfigured with one line."""
    frame = Frame(array_to_image(scene(), "rgb8"), 1)
    job = Job(frame, [ObjectPrompt("square", points=np.array([[45.0, 30.0]]), labels=np.array([1])),
                      ObjectPrompt("box", box=np.array([25.0, 15.0, 65.0, 50.0]))])
    outputs = {}
    for backend in ("torch", "onnxruntime"):
        node = SegmentNode(parameter_overrides=[Parameter("backend", value=backend), Parameter("device", value="cpu")])
        try:
            assert node.core.predictor.backend.name == backend
            outputs[backend] = node.core.process(job, {"labels"})
            (refused,) = node.set_parameters([Parameter("backend", value="torch")])
            assert not refused.successful and refused.reason.startswith("backend: read by configure")
        finally:
            node.destroy_node()
    torch_out, onnx_out = outputs["torch"], outputs["onnxruntime"]
    assert (torch_out.images["labels"] > 0).any()
    assert np.allclose(onnx_out.scores, torch_out.scores, atol=1e-4)
    assert (onnx_out.images["labels"] != torch_out.images["labels"]).mean() < 1e-3
    assert onnx_out.high_rank_share == torch_out.high_rank_share
    assert onnx_out.mean_active_components == torch_out.mean_active_components
    node = SegmentNode(parameter_overrides=[Parameter("backend", value="tensorrt")])
    try:
        assert node.lifecycle_state == "unconfigured" and node.core is None
    finally:
        node.destroy_node()
    assert "configure failed: backend must be one of ('torch', 'onnxruntime'), got 'tensorrt'" in capfd.readouterr().err
