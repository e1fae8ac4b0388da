"""evaluate() on cases with a known answer, with the real predictor and the embedded tiny SAM."""

import json

import numpy as np
import pytest

from gara_model.build import build_model
from gara_model.config import GaraConfig
from gara_model.data.prompts import EVAL_PROTOCOL
from gara_model.data.synthetic import SyntheticInstances
from gara_model.engine.evaluation import evaluate
from gara_model.engine.report import write_report
from gara_model.predictor import GaraPredictor
from tests.model.tiny import gate_outputs, spread_gates


@pytest.fixture(scope="module")
def scenes():
    return SyntheticInstances(size=2, seed=5, num_objects=(1, 3))


def predictor_with_threshold(threshold):
    predictor = GaraPredictor(build_model("tiny"), device="cpu")
    predictor.model.mask_threshold = threshold  # every logit above it: -inf gives full masks, +inf empty ones
    return predictor


def test_full_and_empty_masks_give_the_known_iou_and_dice(scenes):
    rows = evaluate({"full": predictor_with_threshold(-np.inf), "empty": predictor_with_threshold(np.inf)},
                    {"scenes": scenes}, corruptions=["snow"], progress=False).rows
    masks = np.concatenate([scenes[i].masks for i in range(2)])
    area = masks.reshape(len(masks), -1).sum(1) / masks[0].size
    expected_iou, expected_dice = area.mean(), (2 * area / (1 + area)).mean()
    assert [(r.model, r.condition, r.prompt) for r in rows] == [
        (m, c, p) for m in ("full", "empty") for c in ("clear", "snow") for p in ("point", "box")]
    for row in rows:
        assert row.masks == len(masks) and row.images == 2
        if row.model == "full":
            assert row.iou == pytest.approx(expected_iou) and row.dice == pytest.approx(expected_dice)
        else:
            assert row.iou == 0.0 and row.dice == 0.0
        assert row.high_rank_share is None and row.protocol == EVAL_PROTOCOL


def test_gate_statistics_and_report_files(scenes, tmp_path):
    gara = build_model("tiny", config=GaraConfig(ranks=(2, 4)))
    spread_gates(gara, seed=1)  # adapters that decide differently; B stays 0, so the masks stay SAM's
    evaluation = evaluate({"SAM": GaraPredictor(build_model("tiny"), device="cpu"), "GaRA": GaraPredictor(gara, device="cpu")},
                          {"scenes": scenes}, prompt_types=["box"], progress=False)
    fresh = {r.model: r for r in evaluation.rows}
    assert fresh["GaRA"].iou == pytest.approx(fresh["SAM"].iou, abs=1e-6)  # a fresh adapter changes nothing
    # the row's gate statistics: per image from the gates' own outputs (rank set 1 = higher; active = non-zero c_i),
    # then the mean over the images
    alone = GaraPredictor(gara, device="cpu")
    per_image = [gate_outputs(gara, lambda i=i: alone.set_image(scenes[i].image)) for i in range(len(scenes))]
    shares = [np.mean([g.rank_set.item() == 1 for g in gates]) for gates in per_image]
    active = [np.mean([int((g.coefficients != 0).sum()) for g in gates]) for gates in per_image]
    assert 0 < np.mean(shares) < 1
    assert fresh["GaRA"].high_rank_share == pytest.approx(np.mean(shares))
    assert fresh["GaRA"].mean_active_components == pytest.approx(np.mean(active))
    assert list(evaluation.gates) == ["GaRA"] and evaluation.gates["GaRA"].scenes == [0, 1]
    report = write_report(evaluation, tmp_path)
    assert "| scenes | clear | box |" in report.read_text() and "GaRA IoU" in report.read_text()
    assert "Gate adaptivity" in report.read_text() and (tmp_path / "gates_gara.png").stat().st_size > 1000
    written = json.loads((tmp_path / "results.json").read_text())
    assert written["rows"][1]["model"] == "GaRA" and written["gate_adaptivity"]["GaRA"]["scenes"]["images"] == 2
    assert {row["protocol"] for row in written["rows"]} == {EVAL_PROTOCOL}  # results say which prompts they used
    assert (tmp_path / "results.csv").read_text().startswith("model,dataset,condition,prompt,iou,dice")
    assert (tmp_path / "iou.png").stat().st_size > 1000


def test_evaluate_cli_compares_sizes_keeping_each_adapters_scaling(tmp_path, capsys):
    """--image-size without --scaling: every model at each size, with the scaling its file records (base SAM: none)."""
    from gara_model.checkpoint import save_adapter
    from gara_model.evaluate import main

    adapter = save_adapter(build_model("tiny", config=GaraConfig(ranks=(2, 4)), image_size=64, scaling="basam"),
                           tmp_path / "basam64.safetensors")
    main(["--adapter", f"gara={adapter}", "--data", "synthetic:1", "--corruptions", "", "--prompts", "box",
          "--image-size", "64,96", "--out", str(tmp_path / "eval")])
    models = [row["model"] for row in json.loads((tmp_path / "eval" / "results.json").read_text())["rows"]]
    assert models == ["SAM @64 none", "SAM @96 none", "gara @64 basam", "gara @96 basam"]
    with pytest.raises(SystemExit):
        main(["--scaling", "none,yarn", "--data", "synthetic:1"])
    assert "--scaling 'none,yarn': each must be one of none, basam" in capsys.readouterr().err


def test_evaluate_cli_backend_onnxruntime_gives_the_torch_results(tmp_path):
    """--backend onnxruntime: each model's ONNX export (made once into the cache) gives PyTorch's IoU and gates."""
    from gara_model.build import EMBEDDED_TINY_ADAPTER
    from gara_model.evaluate import main

    args = ["--no-base", "--adapter", f"gara={EMBEDDED_TINY_ADAPTER}", "--data", "synthetic:2", "--corruptions", "night",
            "--prompts", "point,box"]
    rows = {}
    for backend in ("torch", "onnxruntime"):
        main(args + ["--backend", backend, "--out", str(tmp_path / backend)])
        rows[backend] = json.loads((tmp_path / backend / "results.json").read_text())["rows"]
    assert len(rows["torch"]) == len(rows["onnxruntime"]) == 4  # clear and night, point and box
    for want, got in zip(rows["torch"], rows["onnxruntime"]):
        assert got["iou"] == pytest.approx(want["iou"], abs=1e-3) and got["dice"] == pytest.approx(want["dice"], abs=1e-3)
        assert got["high_rank_share"] == want["high_rank_share"]
        assert got["mean_active_components"] == want["mean_active_components"]


def test_unknown_prompt_type(scenes):
    with pytest.raises(ValueError, match="prompt_types must be from"):
        evaluate({}, {"scenes": scenes}, prompt_types=["scribble"])


def test_robust_seg_images_are_evaluated_as_stored_and_never_corrupted_twice(tmp_path):
    from gara_model.data.build import build_dataset
    from tests.data.formats import robust_seg_split

    robust_seg_split(tmp_path / "val", ("clear", "snow", "fog"), count=2)
    dataset = build_dataset("robust_seg", tmp_path, "val")
    gara = build_model("tiny", config=GaraConfig(ranks=(2, 4)))
    predictors = {"GaRA": GaraPredictor(gara, device="cpu")}
    with pytest.raises(ValueError, match=r"already holds images under \['snow'\].*no corruptions"):
        evaluate(predictors, {"rs": dataset}, corruptions=["snow", "night"], progress=False)
    evaluation = evaluate(predictors, {"rs": dataset}, prompt_types=["box"], progress=False)
    assert [(r.condition, r.images) for r in evaluation.rows] == [("clear", 2), ("snow", 2), ("fog", 2)]
    records = evaluation.gates["GaRA"]
    assert records.scenes == ["img_0000", "img_0001"] * 3  # one scene id per clear image, shared by its degraded copies
    assert records.conditions == ["clear"] * 2 + ["snow"] * 2 + ["fog"] * 2
