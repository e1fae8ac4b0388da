"""SAM checkpoints through the real loading path, and adapter files (safetensors) round trips."""

import copy
import hashlib
import json
import os
import pickle
import re
import stat
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from gara_model.build import build_model
from gara_model.checkpoint import ADAPTER_FORMAT, atomic_write, load_adapter, read_adapter_config, save_adapter
from gara_model.config import GaraConfig
from gara_model.modeling import (
    adapter_state_dict,
    model_scaling,
    set_adapters_enabled,
    set_attention_backend,
    set_image_size,
    set_scaling,
)

from .tiny import VARIANT_CONFIGS, make_gara


@pytest.fixture
def sam_pth(tiny_sam, tmp_path):
    """A real .pth in SAM's key layout (torch.save of the state dict, as the official files are)."""
    path = tmp_path / "sam_tiny.pth"
    torch.save(tiny_sam.state_dict(), path)
    return path


def test_pth_loads_through_the_real_loading_path(tiny_sam, sam_pth, images):
    loaded = build_model("tiny", sam_pth)
    for key, value in tiny_sam.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    assert not loaded.training
    assert torch.equal(loaded.image_encoder(images[:1]), tiny_sam.image_encoder(images[:1]))


def test_missing_checkpoint_names_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="SAM checkpoint not found: .*nowhere.pth"):
        build_model("tiny", tmp_path / "nowhere.pth")


def test_truncated_checkpoint_is_a_clear_error(sam_pth):
    data = sam_pth.read_bytes()
    sam_pth.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"could not be read \(truncated or corrupt"):
        build_model("tiny", sam_pth)


def test_pickled_code_is_refused(tmp_path):
    """weights_only=True: a checkpoint that would run code when unpickled is not loaded."""
    path = tmp_path / "evil.pth"
    torch.save({"image_encoder.x": torch.zeros(1), "hook": print}, path)
    with pytest.raises(ValueError, match="could not be read"):
        build_model("tiny", path)


def test_wrong_variant_names_the_mismatch_and_guesses_the_variant(tmp_path):
    path = tmp_path / "sam_vit_l_like.pth"
    torch.save({"image_encoder.patch_embed.proj.weight": torch.zeros(1024, 3, 16, 16)}, path)
    with pytest.raises(ValueError, match=r"does not fit SAM variant 'vit_b'.*shape mismatches.*looks like a vit_l checkpoint.*sam_vit_b_01ec64.pth"):
        build_model("vit_b", path)


def test_unknown_variant():
    with pytest.raises(ValueError, match="SAM variant must be one of"):
        build_model("vit_xl")


@pytest.mark.parametrize("variant", list(VARIANT_CONFIGS))
def test_adapter_round_trip_reproduces_outputs(tiny_sam, sam_pth, images, tmp_path, variant):
    trained = make_gara(tiny_sam, VARIANT_CONFIGS[variant], seed=5)
    path = save_adapter(trained, tmp_path / "adapter.safetensors")
    config, base = read_adapter_config(path)
    assert config == VARIANT_CONFIGS[variant] and base["embed_dim"] == 96 and base["depth"] == 4
    loaded = build_model("tiny", sam_pth, adapter=path)
    with torch.no_grad():
        assert torch.equal(loaded.image_encoder(images), trained.image_encoder(images))
    set_adapters_enabled(loaded, False)
    set_attention_backend(loaded, "sam")  # SAM's own attention math: bit for bit
    with torch.no_grad():
        assert torch.equal(loaded.image_encoder(images), tiny_sam.image_encoder(images))


def test_adapter_file_holds_only_adapter_tensors(tiny_sam, tmp_path):
    trained = make_gara(tiny_sam)
    path = save_adapter(trained, tmp_path / "a.safetensors")
    with safe_open(path, framework="pt") as f:
        names = list(f.keys())
    sam_names = set(tiny_sam.state_dict())
    assert names and all(".adapters." in n or ".feature.standardizer." in n for n in names)
    assert not sam_names & set(names)
    assert path.stat().st_size < sum(p.numel() for p in tiny_sam.parameters()) * 4
    assert not (tmp_path / "a.safetensors.tmp").exists()


def test_atomic_write_syncs_the_file_renames_it_then_syncs_the_directory(tmp_path, monkeypatch):
    events, fsync, replace = [], os.fsync, os.replace

    def recording_fsync(fd):
        events.append("fsync directory" if stat.S_ISDIR(os.fstat(fd).st_mode) else "fsync file")
        fsync(fd)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    monkeypatch.setattr(os, "replace", lambda src, dst: (events.append("replace"), replace(src, dst)))
    path = tmp_path / "weights.bin"
    path.write_bytes(b"old")

    def dies_half_way(f):
        f.write(b"new, but not all of it")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(path, dies_half_way)
    assert path.read_bytes() == b"old" and events == [] and list(tmp_path.iterdir()) == [path]
    atomic_write(path, lambda f: f.write(b"new"))
    assert path.read_bytes() == b"new" and events == ["fsync file", "replace", "fsync directory"]
    assert list(tmp_path.iterdir()) == [path]


def test_adapter_on_a_different_architecture_fails_clearly(tiny_sam, tmp_path):
    path = save_adapter(make_gara(tiny_sam), tmp_path / "a.safetensors")
    with pytest.raises(ValueError, match="embed_dim=96, depth=4.*embed_dim=768, depth=12.*wrong base model"):
        load_adapter(build_model("vit_b", pretrained=False), path)


def test_adapter_on_other_base_weights_fails_unless_allowed(tiny_sam, tmp_path, images):
    trained = make_gara(tiny_sam)
    path = save_adapter(trained, tmp_path / "a.safetensors")
    torch.manual_seed(123)
    other = make_gara(build_model("tiny", pretrained=False), randomize=False)
    with pytest.raises(ValueError, match="trained on other base weights"):
        load_adapter(other, path)
    load_adapter(other, path, allow_other_base=True)
    assert all(torch.equal(adapter_state_dict(other)[k], v) for k, v in adapter_state_dict(trained).items())
    assert other.image_encoder(images[:1]).shape == (1, 64, 16, 16)


def test_adapter_config_conflict_is_refused(tiny_sam, sam_pth, tmp_path):
    path = save_adapter(make_gara(tiny_sam), tmp_path / "a.safetensors")
    with pytest.raises(ValueError, match="differs from the one stored in adapter"):
        build_model("tiny", sam_pth, config=GaraConfig(ranks=(2, 2)), adapter=path)


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


def test_the_file_metadata_is_json_holding_the_config_and_the_base(tiny_sam, tmp_path):
    """Read by safetensors itself, not by our reader: the format, the GaraConfig and what the base SAM was."""
    path = save_adapter(make_gara(tiny_sam), tmp_path / "a.safetensors")
    with safe_open(path, framework="pt") as f:
        metadata = f.metadata()
    assert metadata["format"] == ADAPTER_FORMAT
    config = json.loads(metadata["gara_config"])
    assert (config["variant"], config["ranks"], config["gate_hidden_dim"]) == ("gara", [4, 12], 16)
    assert GaraConfig.from_json(metadata["gara_config"]) == VARIANT_CONFIGS["gara"]
    patch_weight = tiny_sam.image_encoder.patch_embed.proj.weight.detach().float().contiguous().numpy()
    assert json.loads(metadata["base"]) == {"embed_dim": 96, "depth": 4, "image_size": 128, "scaling": "none",
                                            "fingerprint": hashlib.sha256(patch_weight.tobytes()).hexdigest()[:16]}


def test_the_builder_applies_the_size_and_scaling_of_an_adapter_file(tiny_sam, sam_pth, tmp_path, images):
    trained = set_scaling(set_image_size(make_gara(tiny_sam), 64), "basam")
    path = save_adapter(trained, tmp_path / "a64.safetensors")
    assert read_adapter_config(path)[1]["scaling"] == "basam"
    loaded = build_model("tiny", sam_pth, adapter=path)
    assert loaded.image_encoder.img_size == 64 and model_scaling(loaded) == "basam"
    small = torch.nn.functional.interpolate(images, size=(64, 64))
    with torch.no_grad():
        assert torch.equal(loaded.image_encoder(small), trained.image_encoder(small))


def test_loading_an_adapter_never_reshapes_the_model(tiny_sam, tmp_path):
    """checkpoint.py reads and checks files: a model at another size or scaling than the file's, or without
    adapters, is refused in one line and left as it was."""
    path = save_adapter(set_scaling(set_image_size(make_gara(tiny_sam), 64), "basam"), tmp_path / "a64.safetensors")
    native = make_gara(tiny_sam, randomize=False)
    before = {k: v.clone() for k, v in adapter_state_dict(native).items()}
    with pytest.raises(ValueError) as refused:
        load_adapter(native, path)
    message = str(refused.value)
    assert "image_size=64, scaling=basam" in message and "image_size=128, scaling=none" in message, message
    assert str(path) in message and "build_model(adapter=...)" in message and "\n" not in message, message
    assert native.image_encoder.img_size == 128 and model_scaling(native) == "none"
    assert all(torch.equal(adapter_state_dict(native)[k], v) for k, v in before.items())  # nothing copied in
    plain = set_scaling(set_image_size(copy.deepcopy(tiny_sam), 64), "basam")
    with pytest.raises(ValueError, match=r"this model has no GaRA adapters; build it with build_model\(adapter=\.\.\.\)"):
        load_adapter(plain, path)


def test_pretrained_sam_needs_a_checkpoint_except_for_the_embedded_tiny_one():
    from gara_model.build import EMBEDDED_TINY_CHECKPOINT

    with pytest.raises(ValueError, match=r"'vit_b' needs a checkpoint \(e.g. sam_vit_b_01ec64.pth\)"):
        build_model("vit_b")
    tiny = build_model("tiny", image_size=64)
    assert tiny.image_encoder.img_size == 64
    embedded = load_file(EMBEDDED_TINY_CHECKPOINT)
    assert all(torch.equal(v, embedded[k]) for k, v in tiny.state_dict().items())
    torch.manual_seed(0)
    random = build_model("tiny", pretrained=False)
    assert not torch.equal(random.mask_decoder.iou_token.weight, embedded["mask_decoder.iou_token.weight"])


# --- files that must be refused in one line naming the file and the problem ---------------------------------------


class RunsCodeWhenUnpickled:
    """Unpickling this creates `marker`: a stand-in for a checkpoint that carries code."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def _adapter(tmp_path, sam):
    return save_adapter(make_gara(sam), tmp_path / "good.safetensors")


def _rewritten_adapter(tmp_path, sam, name, tensors=lambda t: t, metadata=lambda m: m):
    """The good adapter written again by safetensors, with its tensors and/or metadata changed."""
    good = _adapter(tmp_path, sam)
    with safe_open(good, framework="pt") as f:
        meta = f.metadata()
    path = tmp_path / name
    save_file(tensors(load_file(good)), path, metadata=metadata(dict(meta)))
    return path


def _relabelled_f32_as_i32(tmp_path, source):
    """`source` with every F32 tensor relabelled I32 in the safetensors header (same bytes, other dtype)."""
    data = source.read_bytes()
    header_end = 8 + int.from_bytes(data[:8], "little")
    path = tmp_path / f"i32_{source.name}"
    path.write_bytes(data[:8] + data[8:header_end].replace(b'"F32"', b'"I32"') + data[header_end:])
    return path


def _sam_safetensors(tmp_path, sam, change=lambda t: t):
    path = tmp_path / "sam.safetensors"
    save_file(change({k: v.contiguous() for k, v in sam.state_dict().items()}), path)
    return path


def _with_nan_in(name):
    return lambda tensors: {k: torch.full_like(v, float("nan")) if k == name else v for k, v in tensors.items()}


def _without(key):
    return lambda metadata: {k: v for k, v in metadata.items() if k != key}


def _base_without(key):
    return lambda metadata: {**metadata, "base": json.dumps({k: v for k, v in json.loads(metadata["base"]).items() if k != key})}


def _pickle_file(tmp_path, name, write):
    path = tmp_path / name
    with open(path, "wb") as f:
        write(f)
    return path


def _first_trimmed(tensors):
    first = sorted(tensors)[0]
    return {k: v[..., :-1].contiguous() if k == first else v for k, v in tensors.items()}


def _load_adapter(sam, path):
    load_adapter(make_gara(sam, randomize=False), path)


def _load_sam(sam, path):
    build_model("tiny", path)


BAD_FILES = {
    # case: (writes the bad file (tmp_path, tiny_sam) -> path, how it is loaded, what the message must say)
    "adapter F32 relabelled I32": (lambda d, s: _relabelled_f32_as_i32(d, _adapter(d, s)), _load_adapter,
                                   r"tensor \S+ has dtype int32.*floating point"),
    "adapter all NaN": (lambda d, s: _rewritten_adapter(d, s, "nan.safetensors", tensors=lambda t: {k: torch.full_like(v, float("nan")) if v.is_floating_point() else v for k, v in t.items()}),
                        _load_adapter, r"tensor \S+ has \d+ non-finite values"),
    "adapter tensor of the wrong shape": (lambda d, s: _rewritten_adapter(d, s, "shape.safetensors", tensors=_first_trimmed),
                                          _load_adapter, r"\S+ has shape \(.*\), expected \("),
    "adapter metadata without base": (lambda d, s: _rewritten_adapter(d, s, "nobase.safetensors", metadata=_without("base")),
                                      _load_adapter, r"metadata has no 'base'"),
    "adapter base without fingerprint": (lambda d, s: _rewritten_adapter(d, s, "nofp.safetensors", metadata=_base_without("fingerprint")),
                                         _load_adapter, r"'base' .*lacks fingerprint"),
    "adapter gara_config not JSON": (lambda d, s: _rewritten_adapter(d, s, "json.safetensors", metadata=lambda m: {**m, "gara_config": "{ranks: [4"}),
                                     _load_adapter, r"'gara_config' is not a valid GaraConfig.*JSON"),
    "adapter gara_config with an unknown field": (
        lambda d, s: _rewritten_adapter(d, s, "field.safetensors", metadata=lambda m: {**m, "gara_config": '{"rank": 3}'}),
        _load_adapter, r"'gara_config' is not a valid GaraConfig.*unknown GaraConfig fields \['rank'\]"),
    "adapter that is a torch file": (lambda d, s: _pickle_file(d, "torch.safetensors", lambda f: torch.save(load_file(_adapter(d, s)), f)),
                                     _load_adapter, r"is a PyTorch checkpoint, not a safetensors adapter file"),
    "SAM checkpoint that is a YAML file": (lambda d, s: _pickle_file(d, "sam.yaml", lambda f: f.write(b"sam_variant: vit_b\ncheckpoint: ''\n")),
                                           _load_sam, r"is neither a safetensors file nor a PyTorch checkpoint"),
    "SAM checkpoint pickling code (torch.save)": (
        lambda d, s: _pickle_file(d, "evil.pth", lambda f: torch.save({"x": torch.zeros(1), "y": RunsCodeWhenUnpickled(d / "code_ran")}, f)),
        _load_sam, r"could not be read: it holds pickled objects other than tensors \(getattr\)"),
    "SAM checkpoint pickling code (plain pickle)": (
        lambda d, s: _pickle_file(d, "evil.pkl", lambda f: pickle.dump({"y": RunsCodeWhenUnpickled(d / "code_ran")}, f, protocol=2)),
        _load_sam, r"could not be read: it holds pickled objects other than tensors"),
    "SAM checkpoint with a NaN weight": (lambda d, s: _sam_safetensors(d, s, _with_nan_in("mask_decoder.iou_token.weight")),
                                         _load_sam, r"tensor mask_decoder.iou_token.weight has \d+ non-finite values"),
    "SAM checkpoint F32 relabelled I32": (lambda d, s: _relabelled_f32_as_i32(d, _sam_safetensors(d, s)),
                                          _load_sam, r"tensor \S+ has dtype int32.*floating point"),
}


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_bad_files_are_refused_in_one_line_naming_the_file_and_the_problem(case, tiny_sam, tmp_path):
    write, load, problem = BAD_FILES[case]
    path = write(tmp_path, tiny_sam)
    with pytest.raises(ValueError) as refused:
        load(copy.deepcopy(tiny_sam), path)
    message = str(refused.value)
    assert str(path) in message and re.search(problem, message), message
    assert "\n" not in message and "weights_only" not in message, message
    assert not (tmp_path / "code_ran").exists()  # a pickled payload was never run


def test_files_are_recognised_by_content_not_by_suffix(tiny_sam, tmp_path, images):
    trained = make_gara(tiny_sam)
    adapter_as_pth = save_adapter(trained, tmp_path / "adapter.pth")
    loaded = load_adapter(make_gara(tiny_sam, randomize=False), adapter_as_pth)
    with torch.no_grad():
        assert torch.equal(loaded.image_encoder(images[:1]), trained.image_encoder(images[:1]))
    torch_as_safetensors = tmp_path / "sam.safetensors"
    torch.save(tiny_sam.state_dict(), torch_as_safetensors)
    safetensors_as_pth = tmp_path / "sam.pth"
    save_file({k: v.contiguous() for k, v in tiny_sam.state_dict().items()}, safetensors_as_pth)
    for path in (torch_as_safetensors, safetensors_as_pth):
        state = build_model("tiny", path).state_dict()
        assert all(torch.equal(state[k], v) for k, v in tiny_sam.state_dict().items()), path


def test_evaluate_cli_prints_one_error_line_for_a_refused_adapter(tmp_path, capsys):
    from gara_model.evaluate import main

    nan_adapter = tmp_path / "nan.safetensors"
    save_adapter(make_gara(build_model("tiny")), nan_adapter)
    with safe_open(nan_adapter, framework="pt") as f:
        metadata = f.metadata()
    save_file({k: torch.full_like(v, float("nan")) if v.is_floating_point() else v for k, v in load_file(nan_adapter).items()}, nan_adapter, metadata=metadata)
    with pytest.raises(SystemExit) as exited:
        main(["--adapter", f"nan={nan_adapter}", "--data", "synthetic:1", "--corruptions", "", "--out", str(tmp_path / "eval")])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: adapter file ") and str(nan_adapter) in err and "non-finite" in err, err
    assert err.count("\n") == 1 and "Traceback" not in err, err
