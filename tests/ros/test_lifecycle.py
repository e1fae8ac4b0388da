"""segment_node's lifecycle, driven through its lifecycle services as a lifecycle manager or `ros2 lifecycle set`
does: configure loads the model, activate serves, deactivate stops and drops queued work, cleanup frees the model."""

import argparse
import gc
import os
import subprocess
import sys
import threading
import weakref

import pytest
import torch
from std_msgs.msg import Header

from gara_ros.conversions import array_to_image
from tests.ros.harness import wait_for
from tests.ros.helpers import point_object, prompt, scene, stamp
from tests.ros.test_node import stamps

CUP = point_object("cup", 45, 30)


def test_transitions_load_serve_stop_and_free_the_model(harness):
    h = harness(autostart=False, persist=True)
    assert h.state() == "unconfigured" and h.node.core is None

    assert h.transition("configure") and h.state() == "inactive"
    model = weakref.ref(h.node.core.predictor.model)
    assert wait_for(lambda: h.client.count_subscribers(h.images.topic_name) == 0)  # inactive: not subscribed,
    # so this frame and prompt reach nobody
    h.images.publish(array_to_image(scene(), "rgb8", Header(stamp=stamp(1))))
    h.prompts.publish(prompt(CUP))

    assert h.transition("activate") and h.state() == "active"
    h.wait_connected()
    h.send_image(scene(), t=2)
    h.prompts.publish(prompt(CUP))
    assert stamps(h.results_after(0)) == [2]
    assert (h.stats().received, h.stats().processed) == (1, 1)  # what was sent while inactive never arrived

    assert h.transition("deactivate") and h.state() == "inactive"
    assert wait_for(lambda: h.images.get_subscription_count() == 0)  # unsubscribed
    assert h.transition("activate")
    h.wait_connected()
    h.send_image(scene(), t=3)  # the persisted prompt outlives a pause
    assert stamps(h.results_after(1)) == [2, 3]

    assert h.transition("deactivate") and h.transition("cleanup") and h.state() == "unconfigured"
    assert h.node.core is None and h.node.slot is None
    gc.collect()
    assert model() is None  # freed (on CUDA, release_memory also hands the cached blocks back)
    assert wait_for(lambda: h.client.count_publishers(f"{h.name}/result") == 0)  # the outputs went with it

    assert h.transition("configure") and h.transition("activate")  # and it comes back
    h.wait_connected()
    h.send_image(scene(), t=4)
    h.prompts.publish(prompt(CUP))
    assert stamps(h.results_after(2)) == [2, 3, 4]


def test_deactivate_finishes_the_frame_in_progress_and_drops_queued_work(harness):
    h = harness(persist=True)
    set_image, entered, release = h.node.core.predictor.set_image, threading.Event(), threading.Event()

    def held(image):  # the model is busy with frame 1 until the test releases it
        entered.set()
        release.wait(10)
        set_image(image)

    h.node.core.predictor.set_image = held
    h.send_image(scene(), t=1)
    h.prompts.publish(prompt(CUP))
    assert entered.wait(5)
    h.send_image(scene(), t=2)  # its job (the persisted prompt) waits in the slot
    done = threading.Thread(target=h.transition, args=("deactivate",))
    done.start()
    # deactivate stops the worker from taking new jobs before it unsubscribes, which the client sees
    assert wait_for(lambda: h.images.get_subscription_count() == 0)
    release.set()
    done.join(10)
    assert h.node.lifecycle_state == "inactive" and h.node.slot.idle()
    assert h.stats().processed == 1 and stamps(h.results_after(0)) == [1]  # frame 1 published, frame 2 dropped


def yaml_file(folder):
    path = folder / "gara.yaml"
    path.write_text("/**:\n  ros__parameters:\n    device: cpu\n")
    return path, "neither a safetensors file nor a PyTorch checkpoint"


def pickled_object(folder):
    path = folder / "sam.pth"
    torch.save({"config": argparse.Namespace(depth=12)}, path)  # torch.load(weights_only=True) refuses it
    return path, "pickled objects other than tensors (argparse.Namespace)"


def missing(folder):
    return folder / "sam_vit_b.pth", "SAM checkpoint not found"


@pytest.mark.parametrize("bad_checkpoint", [yaml_file, pickled_object, missing])
def test_bad_checkpoint_fails_configure_in_one_line_and_can_be_fixed(harness, tmp_path, capfd, bad_checkpoint):
    path, reason = bad_checkpoint(tmp_path)
    h = harness(autostart=False, checkpoint=str(path))
    assert not h.transition("configure")
    assert h.state() == "unconfigured" and h.node.core is None
    lines = [line for line in capfd.readouterr().err.splitlines() if str(path) in line]
    assert len(lines) == 1 and "configure failed: " in lines[0] and reason in lines[0], lines
    assert "weights_only" not in lines[0]
    (result,) = h.set_params(checkpoint="")  # an unconfigured node takes any parameter; configure reads it
    assert result.successful and h.transition("configure") and h.transition("activate")
    h.wait_connected()
    h.send_image(scene(), t=1)
    h.prompts.publish(prompt(CUP))
    assert stamps(h.results_after(0)) == [1]


def test_started_node_with_a_bad_checkpoint_exits_with_one_line(tmp_path):
    """As a robot user starts it (autostart), from another directory: exit code 1 and one line naming the file."""
    path, reason = yaml_file(tmp_path)
    run = subprocess.run([sys.executable, "-m", "gara_ros.segment_node", "--ros-args", "-p", f"checkpoint:={path}"],
                         capture_output=True, text=True, timeout=60, env=os.environ, cwd=tmp_path)
    assert run.returncode == 1
    lines = [line for line in run.stderr.splitlines() if str(path) in line]
    assert len(lines) == 1 and "configure failed: " in lines[0] and reason in lines[0], run.stderr
