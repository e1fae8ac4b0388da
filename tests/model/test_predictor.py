"""GaraPredictor: several objects per call, every prompt layout, bad prompts, the compile switch."""

import functools

import numpy as np
import pytest
import torch
from segment_anything import SamPredictor

from gara_model.backends import decode_masks
from gara_model.build import build_model
from gara_model.modeling import adapter_layers
from gara_model.predictor import GaraPredictor
from gara_model.prompts import ObjectPrompt

from .tiny import gate_outputs, make_gara, spread_gates


@pytest.fixture
def image():
    rng = np.random.default_rng(0)
    img = (rng.random((96, 160, 3)) * 60).astype(np.uint8)
    img[30:70, 40:100] = (200, 80, 40)
    return img


@pytest.fixture
def predictor(tiny_sam, image, device):
    p = GaraPredictor(make_gara(tiny_sam), device=device, precision="fp32")
    p.set_image(image)
    return p


OBJECTS = [
    ObjectPrompt("point", points=np.array([[70.0, 50.0]]), labels=np.array([1])),
    ObjectPrompt("box", box=np.array([40.0, 30.0, 100.0, 70.0])),
    ObjectPrompt("both", points=np.array([[70.0, 50.0], [5.0, 5.0]]), labels=np.array([1, 0]), box=np.array([35, 25, 105, 75])),
    ObjectPrompt("point2", points=np.array([[20.0, 80.0]]), labels=np.array([1])),
]


def test_several_objects_in_one_call_equal_one_by_one(predictor):
    together = predictor.predict(OBJECTS, multimask_output=True)
    assert together.masks.shape == (4, 3, 96, 160) and together.masks.dtype == bool
    assert together.iou_scores.shape == (4, 3)
    assert together.low_res_logits.shape == (4, 3, 64, 64)
    for i, obj in enumerate(OBJECTS):
        alone = predictor.predict([obj], multimask_output=True)
        assert np.allclose(alone.low_res_logits[0], together.low_res_logits[i], atol=1e-5)
        assert np.allclose(alone.iou_scores[0], together.iou_scores[i], atol=1e-6)


@pytest.mark.parametrize("obj", OBJECTS[:3], ids=lambda o: o.object_id)
def test_plain_sam_matches_segment_anything_predictor(tiny_sam, image, obj, device):
    """With a plain SAM our predictor is SamPredictor: same masks and scores, single mask output (fp32)."""
    ours = GaraPredictor(tiny_sam, device=device, precision="fp32")
    ours.set_image(image)
    theirs = SamPredictor(tiny_sam.to(device))
    theirs.set_image(image)
    got = ours.predict([obj])
    masks, scores, logits = theirs.predict(
        point_coords=obj.points if len(obj.points) else None,
        point_labels=obj.labels if len(obj.points) else None,
        box=obj.box,
        multimask_output=False,
    )
    assert np.array_equal(got.masks[0], masks)
    assert np.allclose(got.iou_scores[0], scores, atol=1e-6)
    assert np.allclose(got.low_res_logits[0], logits, atol=1e-5)
    assert got.gates is None


def test_objects_split_into_chunks_give_the_same_result(predictor):
    together = predictor.predict(OBJECTS, multimask_output=True)
    predictor.chunk_bytes = 1  # one object per decoder call and per mask upsampling
    chunked = predictor.predict(OBJECTS, multimask_output=True)
    assert np.array_equal(chunked.masks, together.masks)
    assert np.allclose(chunked.low_res_logits, together.low_res_logits, atol=1e-6)
    assert np.allclose(chunked.iou_scores, together.iou_scores, atol=1e-6)


def test_gate_summary_for_the_image(tiny_sam, image):
    """The summary against the gates' own outputs: rank set 1 = the higher-rank set, active = non-zero c_i."""
    model = make_gara(tiny_sam)
    spread_gates(model, seed=3)
    predictor = GaraPredictor(model, device="cpu")
    raw = gate_outputs(model, lambda: predictor.set_image(image))
    gates = predictor.predict(OBJECTS[:1]).gates
    assert len(gates.adapters) == len(raw) == 4 * 3
    rank_sets = [int(g.rank_set.item()) for g in raw]
    active = [int((g.coefficients != 0).sum()) for g in raw]
    assert 0 < sum(rank_sets) < len(rank_sets)  # the adapters really decide differently
    assert [a.rank_set for a in gates.adapters] == rank_sets
    assert [a.active_components for a in gates.adapters] == active
    assert gates.high_rank_share == pytest.approx(sum(rank_sets) / len(rank_sets))
    assert gates.mean_active_components == pytest.approx(np.mean(active))
    assert gates.mean_active_components == pytest.approx(np.mean([a.active_components for a in gates.adapters]))


def test_bgr_input_equals_rgb(predictor, image):
    rgb = predictor.predict(OBJECTS[:2]).low_res_logits
    predictor.set_image(np.ascontiguousarray(image[..., ::-1]), image_format="BGR")
    assert np.array_equal(predictor.predict(OBJECTS[:2]).low_res_logits, rgb)


def test_mask_threshold_is_applied(predictor):
    low = predictor.predict(OBJECTS[:1], mask_threshold=-1e9).masks
    high = predictor.predict(OBJECTS[:1], mask_threshold=1e9).masks
    assert low.all() and not high.any()


@pytest.mark.parametrize(
    "obj, message",
    [
        (ObjectPrompt("far", points=np.array([[500.0, 10.0]]), labels=np.array([1])), "'far': point .* outside the 160 x 96 image"),
        (ObjectPrompt("nan", points=np.array([[np.nan, 10.0]]), labels=np.array([1])), "'nan': points contain NaN"),
        (ObjectPrompt("empty"), "'empty': empty prompt"),
        (ObjectPrompt("flip", box=np.array([50.0, 10.0, 20.0, 40.0])), "'flip': box .* x2 <= x1"),
        (ObjectPrompt("gone", box=np.array([300.0, 10.0, 400.0, 40.0])), "'gone': box .* outside"),
        (ObjectPrompt("label", points=np.array([[5.0, 5.0]]), labels=np.array([3])), "'label': point labels must be 1"),
        (ObjectPrompt("count", points=np.array([[5.0, 5.0]]), labels=np.array([1, 1])), "'count': 1 points but 2 labels"),
        (ObjectPrompt(points=np.array([[5.0, np.inf]]), labels=np.array([1])), "object #1: points contain NaN or infinity"),
    ],
)
def test_bad_prompts_raise_naming_the_object(predictor, obj, message):
    with pytest.raises(ValueError, match=message):
        predictor.predict([OBJECTS[0], obj])


def test_box_partly_outside_is_clipped(predictor):
    clipped = predictor.predict([ObjectPrompt("edge", box=np.array([100.0, 50.0, 170.0, 120.0]))])
    inside = predictor.predict([ObjectPrompt("edge", box=np.array([100.0, 50.0, 160.0, 96.0]))])
    assert np.array_equal(clipped.low_res_logits, inside.low_res_logits)


def test_call_order_and_input_errors(tiny_sam):
    p = GaraPredictor(tiny_sam, device="cpu")
    with pytest.raises(RuntimeError, match="set_image"):
        p.predict(OBJECTS[:1])
    with pytest.raises(ValueError, match="H x W x 3 uint8"):
        p.set_image(np.zeros((10, 10), np.uint8))
    with pytest.raises(ValueError, match="H x W x 3 uint8"):
        p.set_image(np.zeros((10, 10, 3), np.float32))
    p.set_image(np.zeros((10, 10, 3), np.uint8))
    with pytest.raises(ValueError, match="objects is empty"):
        p.predict([])


def test_device_and_precision_errors(tiny_sam):
    with pytest.raises(ValueError, match="precision must be one of"):
        GaraPredictor(tiny_sam, device="cpu", precision="fp8")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            GaraPredictor(tiny_sam, device="cuda")


def test_decode_masks_equals_sams_mask_decoder(tiny_sam):
    """Broadcasting the image embedding over the objects gives what SAM's decoder computes after repeating it."""
    features = torch.randn(1, 64, 16, 16, generator=torch.Generator().manual_seed(0))
    points = (torch.rand(5, 2, 2) * 128, torch.tensor([[1, 0]] * 5))
    sparse, dense = tiny_sam.prompt_encoder(points=points, boxes=torch.rand(5, 4) * 64, masks=None)
    pe = tiny_sam.prompt_encoder.get_dense_pe()
    with torch.no_grad():
        masks, iou = decode_masks(tiny_sam.mask_decoder, features, pe, sparse, dense[:1])
        sam_masks, sam_iou = tiny_sam.mask_decoder.predict_masks(features, pe, sparse, dense)
    assert masks.shape == (5, 4, 64, 64) and iou.shape == (5, 4)
    assert torch.allclose(masks, sam_masks, atol=1e-5) and torch.allclose(iou, sam_iou, atol=1e-6)


def test_compile_switch_keeps_masks_and_gates(tiny_sam, image, monkeypatch, device):
    """compile=True traces the encoder (gate hooks included) and the decoder; the eager backend keeps this fast."""
    monkeypatch.setattr(torch, "compile", functools.partial(torch.compile, backend="eager"))
    model = make_gara(tiny_sam)
    eager = GaraPredictor(model, device=device, precision="fp32")
    compiled = GaraPredictor(model, device=device, precision="fp32", compile=True)
    for img in (image, np.ascontiguousarray(image[::-1])):
        eager.set_image(img)
        compiled.set_image(img)
        assert compiled.gates == eager.gates
        got, want = compiled.predict(OBJECTS[:2], multimask_output=True), eager.predict(OBJECTS[:2], multimask_output=True)
        assert np.allclose(got.low_res_logits, want.low_res_logits, atol=1e-5)


def test_from_files_image_size_overrides_the_adapter_size_and_keeps_its_scaling(tmp_path):
    from gara_model.build import build_model
    from gara_model.checkpoint import save_adapter
    from gara_model.config import GaraConfig
    from gara_model.modeling.basam import BiasModeMask

    native = save_adapter(build_model("tiny", config=GaraConfig(ranks=(2, 4))), tmp_path / "native.safetensors")
    at_96 = GaraPredictor.from_files(adapter=native, device="cpu", image_size=96)
    assert at_96.model.image_encoder.img_size == 96 and at_96.transform.target_length == 96
    basam = build_model("tiny", config=GaraConfig(ranks=(2, 4)), image_size=64, scaling="basam")
    path = save_adapter(basam, tmp_path / "basam64.safetensors")
    from_file = GaraPredictor.from_files(adapter=path, device="cpu")
    assert from_file.model.image_encoder.img_size == 64
    resized = GaraPredictor.from_files(adapter=path, device="cpu", image_size=96)
    assert resized.model.image_encoder.img_size == 96
    assert sum(isinstance(m, BiasModeMask) for m in resized.model.modules()) == 2


def test_from_files_without_files_is_the_embedded_tiny_gara_sam():
    from safetensors.torch import load_file

    from gara_model.build import EMBEDDED_TINY_ADAPTER, EMBEDDED_TINY_CHECKPOINT
    from gara_model.checkpoint import read_adapter_config
    from gara_model.modeling import adapter_state_dict

    predictor = GaraPredictor.from_files(device="cpu")
    assert predictor.model_name.startswith("GaRA-SAM (embed 96, depth 4, input 128)")
    config, base = read_adapter_config(EMBEDDED_TINY_ADAPTER)
    assert (config.variant, config.ranks) == ("gara", (4, 32)) and base["image_size"] == 128
    shipped = load_file(EMBEDDED_TINY_ADAPTER)
    assert all(torch.equal(v, shipped[k]) for k, v in adapter_state_dict(predictor.model).items())
    sam = load_file(EMBEDDED_TINY_CHECKPOINT)
    assert torch.equal(predictor.model.mask_decoder.iou_token.weight, sam["mask_decoder.iou_token.weight"])
    predictor.set_image(np.zeros((40, 60, 3), np.uint8))
    assert len(predictor.gates.adapters) == 4 * 3


def test_from_files_names_its_rule_for_a_variant_without_checkpoint(caplog):
    """sam_variant names a checkpoint's variant: without one the base is the embedded tiny SAM, and the log says so."""
    with caplog.at_level("INFO", logger="gara_model.build"):
        predictor = GaraPredictor.from_files("vit_h", device="cpu")
    assert predictor.model_name.startswith("GaRA-SAM (embed 96, depth 4")
    assert "sam_variant 'vit_h' applies to a checkpoint only" in caplog.text


def test_mask_input_matches_segment_anything_predictor(tiny_sam, image):
    """A previous prediction's low-res logits as the mask prompt: SamPredictor's mask_input, per object."""
    ours = GaraPredictor(tiny_sam, device="cpu")
    ours.set_image(image)
    theirs = SamPredictor(tiny_sam)
    theirs.set_image(image)
    previous = ours.predict(OBJECTS[:2]).low_res_logits[:, 0]  # O x h x w
    followed = [ObjectPrompt(o.object_id, o.points, o.labels, o.box, mask_input=logits)
                for o, logits in zip(OBJECTS[:2], previous[::-1])]  # each object gets the other's mask
    followed.append(ObjectPrompt("mask only", mask_input=previous[0]))
    got = ours.predict(followed)
    ours.chunk_bytes = 1  # one object per decoder call: the per-object dense embeddings split with them
    assert np.allclose(ours.predict(followed).low_res_logits, got.low_res_logits, atol=1e-5)
    for i, obj in enumerate(followed):
        _, scores, logits = theirs.predict(
            point_coords=obj.points if len(obj.points) else None, point_labels=obj.labels if len(obj.points) else None,
            box=obj.box, mask_input=obj.mask_input[None], multimask_output=False)
        assert np.allclose(got.low_res_logits[i], logits, atol=1e-5)
        assert np.allclose(got.iou_scores[i], scores, atol=1e-6)
    plain = ours.predict(OBJECTS[:2]).low_res_logits
    assert not np.allclose(plain, got.low_res_logits[:2], atol=1e-3)  # the mask input changed the result


def test_mask_input_of_the_wrong_size_is_refused(predictor):
    with pytest.raises(ValueError, match="'m': mask_input is 32 x 32, this model takes 64 x 64"):
        predictor.predict([ObjectPrompt("m", box=np.array([40.0, 30.0, 100.0, 70.0]), mask_input=np.zeros((32, 32)))])
    with pytest.raises(ValueError, match="'n': mask_input must be an h x w array of finite logits"):
        predictor.predict([ObjectPrompt("n", mask_input=np.full((64, 64), np.nan))])


def test_from_files_with_no_adapter_is_plain_sam_even_without_a_checkpoint():
    plain = GaraPredictor.from_files(adapter="none", device="cpu")
    default = GaraPredictor.from_files(device="cpu")
    assert plain.model_name.startswith("SAM (embed 96") and default.model_name.startswith("GaRA-SAM (embed 96")
    assert not adapter_layers(plain.model) and adapter_layers(default.model)
    base = build_model("tiny")
    for name, tensor in base.state_dict().items():
        assert torch.equal(plain.model.state_dict()[name], tensor), name  # the embedded base's own weights


@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_reduced_precision_is_close_to_fp32(tiny_sam, image, device, precision):
    """Autocast (the default "auto" on CUDA is fp16): features, mask logits and IoU near fp32's."""
    model = make_gara(tiny_sam)
    full, reduced = (GaraPredictor(model, device=device, precision=p) for p in ("fp32", precision))
    for predictor in (full, reduced):
        predictor.set_image(image)
    assert reduced.features.dtype == torch.float32  # the predictor hands fp32 on, whatever it computed in
    assert (reduced.features - full.features).abs().max() < 0.05 * full.features.abs().max()
    want, got = full.predict(OBJECTS, multimask_output=True), reduced.predict(OBJECTS, multimask_output=True)
    assert np.abs(got.low_res_logits - want.low_res_logits).max() < 0.05 * np.abs(want.low_res_logits).max()
    assert np.abs(got.iou_scores - want.iou_scores).max() < 0.05
