"""Shared by every test: the device of the device-parametrised tests, and a cache of ONNX exports per session.

Tests that take the `device` fixture run on the CPU unless `--device cuda` (or GARA_TEST_DEVICE=cuda) is given;
they are marked `device`, so `pytest -m device --device cuda` runs exactly them on a GPU (bench/gpu_check.py).
"""

import os

import pytest
import torch


def pytest_addoption(parser):
    parser.addoption("--device", default=os.environ.get("GARA_TEST_DEVICE", "cpu"),
                     help="device of the tests marked 'device' (cpu, cuda, cuda:N); default $GARA_TEST_DEVICE or cpu")


def pytest_configure(config):
    config.addinivalue_line("markers", "device: runs on the device given by --device (the `device` fixture)")


def pytest_collection_modifyitems(config, items):
    for item in items:
        if "device" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.device)


@pytest.fixture(scope="session")
def device(request) -> torch.device:
    """The --device of this run. On CUDA, TF32 is off so that float tolerances mean fp32 arithmetic."""
    device = torch.device(request.config.getoption("--device"))
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise pytest.UsageError(f"--device {device}: CUDA is not available here")
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    return device


@pytest.fixture(scope="session", autouse=True)
def onnx_cache(tmp_path_factory):
    """Exports made on demand (backend onnxruntime without onnx_dir) go to one directory per session, not ~/.cache:
    tests that need the same model's export share it."""
    previous = os.environ.get("GARA_CACHE_DIR")
    os.environ["GARA_CACHE_DIR"] = str(tmp_path_factory.mktemp("gara_cache"))
    yield
    if previous is None:
        os.environ.pop("GARA_CACHE_DIR")
    else:
        os.environ["GARA_CACHE_DIR"] = previous
