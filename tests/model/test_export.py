"""ONNX export and the onnxruntime backend: the exported encoder (gates inside the graph) and decoder equal PyTorch.

Tolerance, fp32 on the CPU: |ONNX - PyTorch| <= 1e-4 + 1e-4 |PyTorch| for the image embedding, the low-res mask
logits and the predicted IoU (measured: about 2e-6 and 2e-5), with and without mask prompts; every gate decision
identical.
"""

import copy
import dataclasses
import json
import shutil

import numpy as np
import onnxruntime
import pytest
import torch

from gara_model.backends import MANIFEST, OnnxFiles
from gara_model.data import render_scene
from gara_model.export import export_onnx, main
from gara_model.predictor import GaraPredictor
from gara_model.prompts import ObjectPrompt

from .tiny import VARIANT_CONFIGS, image_dependent_rank_sets, make_gara, randomize_adapters, spread_gates

TOLERANCE = {"atol": 1e-4, "rtol": 1e-4}
IMAGES = {
    "dark": np.full((96, 160, 3), 10, np.uint8),
    "bright": np.full((96, 160, 3), 240, np.uint8),
    "scene": render_scene(np.random.default_rng(0), image_size=128).image[:96],
}
# every prompt layout, and 16 objects with 1 to 4 points (the decoder's dynamic num_objects and num_points)
OBJECTS = [
    ObjectPrompt("point", points=np.array([[70.0, 50.0]]), labels=np.array([1])),
    ObjectPrompt("box", box=np.array([40.0, 30.0, 100.0, 70.0])),
    ObjectPrompt("both", points=np.array([[70.0, 50.0], [5.0, 5.0]]), labels=np.array([1, 0]),
                 box=np.array([35, 25, 105, 75])),
] + [ObjectPrompt(f"many{i}", points=np.array([[8.0 * i + 5, 5.0 * i + 3 + 4 * j] for j in range(1 + i % 4)]),
                  labels=np.array([1, 0, 1, 0][: 1 + i % 4])) for i in range(16)]


@pytest.fixture(scope="module")
def exported(tmp_path_factory, tiny_sam_session):
    """name -> (model, its export directory): plain SAM, LoRA, and GaRA whose rank-set gates follow the image."""
    gara = make_gara(tiny_sam_session, VARIANT_CONFIGS["gara"])
    spread_gates(gara, seed=0)
    image_dependent_rank_sets(gara)
    models = {"sam": copy.deepcopy(tiny_sam_session), "lora": make_gara(tiny_sam_session, VARIANT_CONFIGS["lora"]),
              "gara": gara}
    exports = {}
    for name, model in models.items():
        export_dir = tmp_path_factory.mktemp(name)
        export_onnx(model, export_dir)
        exports[name] = (model, export_dir)
    return exports


def predictor_pair(model, export_dir, device=torch.device("cpu")):
    """(PyTorch, onnxruntime) predictors of `model`, both in fp32 on `device`."""
    if device.type == "cuda" and "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
        pytest.skip("the installed onnxruntime has no CUDA provider (onnxruntime-gpu)")
    return (GaraPredictor(model, device=device, precision="fp32"),
            GaraPredictor(model, device=device, backend="onnxruntime", onnx_dir=export_dir))


def with_mask_prompts(prediction) -> list[ObjectPrompt]:
    """The first three objects again with another object's single-mask logits of `prediction` as their mask prompt
    (decoder_with_mask.onnx), and a mask-only object (no points)."""
    logits = prediction.low_res_logits[:, 0]
    return [dataclasses.replace(o, mask_input=logits[(i + 1) % 3]) for i, o in enumerate(OBJECTS[:3])] + [
        ObjectPrompt("mask only", mask_input=logits[0])]


def assert_same_outputs(want: GaraPredictor, got: GaraPredictor, image: np.ndarray) -> None:
    want.set_image(image)
    got.set_image(image)
    assert torch.allclose(got.features, want.features, **TOLERANCE)
    assert got.gates == want.gates
    plain = want.predict(OBJECTS)
    followed = with_mask_prompts(plain)
    assert not np.allclose(want.predict(followed[:3]).low_res_logits, plain.low_res_logits[:3], **TOLERANCE)
    for objects in (OBJECTS, followed):
        for multimask in (False, True):  # all four of the decoder's mask tokens
            a, b = want.predict(objects, multimask_output=multimask), got.predict(objects, multimask_output=multimask)
            assert np.allclose(b.low_res_logits, a.low_res_logits, **TOLERANCE)
            assert np.allclose(b.iou_scores, a.iou_scores, **TOLERANCE)
            # only pixels whose logit is within the tolerance of the threshold
            assert (b.masks != a.masks).mean() < 1e-4


@pytest.mark.parametrize("name", ["sam", "lora", "gara"])
def test_exported_model_equals_pytorch(exported, name, device):
    want, got = predictor_pair(*exported[name], device)
    assert got.backend.name == "onnxruntime"
    gpu_providers = {"TensorrtExecutionProvider", "CUDAExecutionProvider"}
    assert (got.backend.providers[0] in gpu_providers) == (device.type == "cuda")
    for image in IMAGES.values() if name == "gara" else [IMAGES["scene"]]:  # GaRA's decisions differ per image
        assert_same_outputs(want, got, image)
    assert (got.gates is None) == (name == "sam")


def test_gate_decisions_in_the_graph_follow_the_image(exported):
    """Two images, different rank sets in the ONNX run, each equal to PyTorch's: the gates run inside the graph."""
    want, got = predictor_pair(*exported["gara"])
    rank_sets = {}
    for name in ("dark", "bright"):
        got.set_image(IMAGES[name])
        want.set_image(IMAGES[name])
        assert np.array_equal(got.gates.decisions, want.gates.decisions)
        rank_sets[name] = np.array([a.rank_set for a in got.gates.adapters])
    switched = rank_sets["dark"] != rank_sets["bright"]
    assert switched.any()
    # the same adapters take the lower-rank set on one image and the higher-rank set on the other, both ways
    assert {(0, 1), (1, 0)} <= set(zip(rank_sets["dark"][switched], rank_sets["bright"][switched]))


def test_manifest_names_the_files_and_gate_layout(exported):
    model, export_dir = exported["gara"]
    files = OnnxFiles.read(export_dir)
    assert (files.opset, files.precision, files.image_size) == (18, "fp32", 128)
    assert len(files.gate_columns) == 4 * 3
    assert files.gate_columns[0] == ("image_encoder.blocks.0.attn.qkv.adapters.q", 2, 16)
    assert files.model_name.startswith("GaRA-SAM (embed 96, depth 4")
    assert OnnxFiles.read(exported["sam"][1]).gate_columns == ()


def test_files_of_another_model_are_refused(exported, tmp_path):
    lora, _ = exported["lora"]
    with pytest.raises(ValueError, match="ONNX files of another model"):
        GaraPredictor(lora, device="cpu", backend="onnxruntime", onnx_dir=exported["gara"][1])
    with pytest.raises(FileNotFoundError, match="holds no exported model"):
        GaraPredictor(lora, device="cpu", backend="onnxruntime", onnx_dir=tmp_path)
    with pytest.raises(ValueError, match="are fp32"):
        GaraPredictor(lora, device="cpu", precision="fp16", backend="onnxruntime", onnx_dir=exported["lora"][1])
    with pytest.raises(ValueError, match="compile applies to the torch backend"):
        GaraPredictor(lora, device="cpu", compile=True, backend="onnxruntime", onnx_dir=exported["lora"][1])
    with pytest.raises(ValueError, match="backend must be one of"):
        GaraPredictor(lora, device="cpu", backend="tensorrt")
    with pytest.raises(ValueError, match="precision bf16: the onnxruntime backend runs fp32 or fp16"):
        GaraPredictor(lora, device="cpu", precision="bf16", backend="onnxruntime", onnx_dir=exported["lora"][1])
    (tmp_path / MANIFEST).write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(ValueError, match="is not a gara ONNX manifest"):
        OnnxFiles.read(tmp_path)
    truncated = tmp_path / "truncated"
    shutil.copytree(exported["lora"][1], truncated)
    data = (truncated / "encoder.onnx").read_bytes()
    (truncated / "encoder.onnx").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"truncated/encoder.onnx: onnxruntime cannot load it \("):
        GaraPredictor(lora, device="cpu", backend="onnxruntime", onnx_dir=truncated)


def test_non_finite_weights_are_not_exported(tiny_sam, tmp_path):
    model = make_gara(tiny_sam, VARIANT_CONFIGS["lora"])
    with torch.no_grad():
        model.image_encoder.blocks[2].attn.qkv.adapters["v"].lora_B[0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN or infinity .*blocks.2.attn.qkv.adapters.v.lora_B"):
        export_onnx(model, tmp_path)
    assert not (tmp_path / MANIFEST).exists()
    with pytest.raises(ValueError, match="opset must be 18 or newer"):
        export_onnx(tiny_sam, tmp_path, opset=17)


def test_cli_exports_the_embedded_model_and_the_predictor_runs_it(tmp_path, capsys):
    """`python -m gara_model.export --out DIR` without files: the embedded tiny GaRA-SAM, checked against PyTorch."""
    main(["--out", str(tmp_path)])
    printed = capsys.readouterr().out
    assert "GaRA-SAM (embed 96, depth 4, input 128), fp32, opset 18" in printed
    assert "gate decisions identical" in printed
    want = GaraPredictor.from_files(device="cpu")
    got = GaraPredictor.from_files(device="cpu", backend="onnxruntime", onnx_dir=tmp_path)
    assert_same_outputs(want, got, IMAGES["scene"])


def test_fp16_export_in_the_cache_is_close_and_reused(tiny_sam, tmp_path, monkeypatch):
    """Without onnx_dir the model is exported once into the cache; fp16 files compute in half precision."""
    monkeypatch.setenv("GARA_CACHE_DIR", str(tmp_path))
    model = make_gara(tiny_sam, VARIANT_CONFIGS["lora"])
    randomize_adapters(model, seed=1)
    half = GaraPredictor(model, device="cpu", precision="fp16", backend="onnxruntime")
    (export_dir,) = (tmp_path / "onnx").iterdir()
    assert OnnxFiles.read(export_dir).precision == "fp16" and export_dir.name.endswith("-fp16-opset18")
    written = (export_dir / MANIFEST).stat().st_mtime_ns
    again = GaraPredictor(model, device="cpu", precision="fp16", backend="onnxruntime")
    assert (export_dir / MANIFEST).stat().st_mtime_ns == written and again.backend.files == half.backend.files
    full = GaraPredictor(model, device="cpu")
    for predictor in (half, full):
        predictor.set_image(IMAGES["scene"])
    scale = full.features.abs().max()
    assert (half.features - full.features).abs().max() < 0.01 * scale
    a, b = full.predict(OBJECTS[:3]), half.predict(OBJECTS[:3])
    assert np.abs(b.low_res_logits - a.low_res_logits).max() < 0.02 * np.abs(a.low_res_logits).max()
