"""SAM checkpoints through the real loading path, and adapter files (safetensors) round trips."""

import copy
import json

import pytest
import torch
from safetensors.torch import save_file

from gara_model.build import build_gara_sam, build_sam
from gara_model.checkpoint import load_adapter, read_adapter_config, save_adapter
from gara_model.config import GaraConfig
from gara_model.modeling import set_adapters_enabled, set_attention_backend

from .tiny import VARIANT_CONFIGS, make_gara


@pytest.fixture
def sam_pth(tiny_sam, tmp_path):
    """A real .pth in SAM's key layout (torch.save of the state dict, as the official files are)."""
    path = tmp_path / "sam_tiny.pth"
    torch.save(tiny_sam.state_dict(), path)
    return path


def test_pth_loads_through_the_real_loading_path(tiny_sam, sam_pth, images):
    loaded = build_sam("tiny", sam_pth)
    for key, value in tiny_sam.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    assert not loaded.training
    assert torch.equal(loaded.image_encoder(images[:1]), tiny_sam.image_encoder(images[:1]))


def test_missing_checkpoint_names_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="SAM checkpoint not found: .*nowhere.pth"):
        build_sam("tiny", tmp_path / "nowhere.pth")


def test_truncated_checkpoint_is_a_clear_error(sam_pth):
    data = sam_pth.read_bytes()
    sam_pth.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"could not be read \(truncated or corrupt"):
        build_sam("tiny", sam_pth)


def test_pickled_code_is_refused(tmp_path):
    """weights_only=True: a checkpoint that would run code when unpickled is not loaded."""
    path = tmp_path / "evil.pth"
    torch.save({"image_encoder.x": torch.zeros(1), "hook": print}, path)
    with pytest.raises(ValueError, match="could not be read"):
        build_sam("tiny", path)


def test_wrong_variant_names_the_mismatch_and_guesses_the_variant(tmp_path):
    path = tmp_path / "sam_vit_l_like.pth"
    torch.save({"image_encoder.patch_embed.proj.weight": torch.zeros(1024, 3, 16, 16)}, path)
    with pytest.raises(ValueError, match=r"does not fit SAM variant 'vit_b'.*shape mismatches.*looks like a vit_l checkpoint.*sam_vit_b_01ec64.pth"):
        build_sam("vit_b", path)


def test_unknown_variant():
    with pytest.raises(ValueError, match="SAM variant must be one of"):
        build_sam("vit_xl")


@pytest.mark.parametrize("variant", list(VARIANT_CONFIGS))
def test_adapter_round_trip_reproduces_outputs(tiny_sam, sam_pth, images, tmp_path, variant):
    trained = make_gara(tiny_sam, VARIANT_CONFIGS[variant], seed=5)
    path = save_adapter(trained, tmp_path / "adapter.safetensors")
    config, base = read_adapter_config(path)
    assert config == VARIANT_CONFIGS[variant] and base["embed_dim"] == 96 and base["depth"] == 4
    loaded = build_gara_sam("tiny", sam_pth, adapter=path)
    with torch.no_grad():
        assert torch.equal(loaded.image_encoder(images), trained.image_encoder(images))
    set_adapters_enabled(loaded, False)
    set_attention_backend(loaded, "sam")  # SAM's own attention math: bit for bit
    with torch.no_grad():
        assert torch.equal(loaded.image_encoder(images), tiny_sam.image_encoder(images))


def test_adapter_file_holds_only_adapter_tensors(tiny_sam, tmp_path):
    trained = make_gara(tiny_sam)
    path = save_adapter(trained, tmp_path / "a.safetensors")
    from safetensors import safe_open

    with safe_open(path, framework="pt") as f:
        names = list(f.keys())
    sam_names = set(tiny_sam.state_dict())
    assert names and all(".adapters." in n or ".feature.standardizer." in n for n in names)
    assert not sam_names & set(names)
    assert path.stat().st_size < sum(p.numel() for p in tiny_sam.parameters()) * 4
    assert not (tmp_path / "a.safetensors.tmp").exists()


def test_adapter_on_a_different_architecture_fails_clearly(tiny_sam, tmp_path):
    path = save_adapter(make_gara(tiny_sam), tmp_path / "a.safetensors")
    with pytest.raises(ValueError, match="embed_dim=96, depth=4.*embed_dim=768, depth=12.*wrong base model"):
        load_adapter(build_sam("vit_b"), path)


def test_adapter_on_other_base_weights_fails_unless_allowed(tiny_sam, tmp_path, images):
    path = save_adapter(make_gara(tiny_sam), tmp_path / "a.safetensors")
    torch.manual_seed(123)
    other = build_sam("tiny")
    with pytest.raises(ValueError, match="trained on other base weights"):
        load_adapter(other, path)
    load_adapter(other, path, allow_other_base=True)
    assert other.image_encoder(images[:1]).shape == (1, 64, 16, 16)


def test_adapter_config_conflict_is_refused(tiny_sam, sam_pth, tmp_path):
    path = save_adapter(make_gara(tiny_sam), tmp_path / "a.safetensors")
    with pytest.raises(ValueError, match="differs from the one stored in adapter"):
        build_gara_sam("tiny", sam_pth, config=GaraConfig(ranks=(2, 2)), adapter=path)


def test_corrupt_or_foreign_adapter_files(tmp_path, tiny_sam):
    truncated = tmp_path / "cut.safetensors"
    save_adapter(make_gara(tiny_sam), truncated)
    truncated.write_bytes(truncated.read_bytes()[:100])
    with pytest.raises(ValueError, match="could not be read"):
        load_adapter(tiny_sam, truncated)
    foreign = tmp_path / "foreign.safetensors"
    save_file({"w": torch.zeros(2)}, foreign, metadata={"format": "something-else"})
    with pytest.raises(ValueError, match="is not a gara adapter file"):
        load_adapter(tiny_sam, foreign)
    with pytest.raises(FileNotFoundError, match="adapter file not found"):
        load_adapter(tiny_sam, tmp_path / "none.safetensors")


def test_metadata_is_readable_json(tiny_sam, tmp_path):
    path = save_adapter(make_gara(tiny_sam), tmp_path / "a.safetensors")
    config, base = read_adapter_config(path)
    assert json.loads(config.to_json())["ranks"] == [4, 12]
    assert len(base["fingerprint"]) == 16


def test_adapter_trained_at_another_size_brings_its_geometry(tiny_sam, tmp_path, images):
    from gara_model.modeling.resolution import set_image_size

    trained = set_image_size(make_gara(tiny_sam), 64, "basam")
    path = save_adapter(trained, tmp_path / "a64.safetensors")
    assert read_adapter_config(path)[1]["scaling"] == "basam"
    loaded = load_adapter(copy.deepcopy(tiny_sam), path)
    assert loaded.image_encoder.img_size == 64
    small = torch.nn.functional.interpolate(images, size=(64, 64))
    with torch.no_grad():
        assert torch.equal(loaded.image_encoder(small), trained.image_encoder(small))


def test_pretrained_sam_needs_a_checkpoint_except_for_the_embedded_tiny_one():
    from gara_model.build import EMBEDDED_TINY_CHECKPOINT, pretrained_sam

    with pytest.raises(ValueError, match=r"'vit_b' needs a checkpoint \(e.g. sam_vit_b_01ec64.pth\)"):
        pretrained_sam("vit_b")
    tiny = pretrained_sam("tiny", image_size=64)
    assert tiny.image_encoder.img_size == 64
    assert torch.equal(tiny.mask_decoder.iou_token.weight, build_sam("tiny", EMBEDDED_TINY_CHECKPOINT).mask_decoder.iou_token.weight)
