import pytest

from gara_model.config import GaraConfig
from gara_model.engine.config import load_train_config


def test_defaults_follow_the_paper_but_for_the_named_departures_of_the_recipe():
    cfg = load_train_config()
    assert (cfg.batch_size, cfg.optim.weight_decay, cfg.optim.focal_weight, cfg.optim.dice_weight) == (8, 1e-5, 20.0, 1.0)
    assert cfg.adapter == GaraConfig(variant="gara", ranks=(16, 256), tau=0.5, gating_feature="mean_std")
    assert (cfg.optim.gate_weight_decay, cfg.optim.schedule, cfg.optim.gate_lr_scale) == (0.0, "cosine", 1.0)
    assert cfg.data.clear_fraction == 1 / 2
    paper = load_train_config(overrides=["optim.gate_weight_decay=null", "optim.schedule=constant",
                                         "adapter.gating_feature=mean", "data.clear_fraction=0.0625"])
    assert (paper.optim.gate_weight_decay, paper.optim.schedule, paper.adapter.gating_feature) == (None, "constant", "mean")
    assert paper.data.clear_fraction == 1 / 16  # Robust-Seg: each image clear once beside its 15 degraded copies
    assert cfg.data.points_per_object == 3
    assert load_train_config(overrides=["model.sam=vit_b"]).lr == 1e-4
    assert load_train_config(overrides=["model.sam=vit_l"]).lr == 1e-5


def test_yaml_then_overrides(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("steps: 50\nadapter: {variant: lora, ranks: [128]}\noptim: {lr: 0.001}\n")
    cfg = load_train_config(str(path), ["optim.lr=2e-4", "adapter.ranks=[256]", "data.corruptions=[fog, rain]"])
    assert cfg.steps == 50 and cfg.optim.lr == 2e-4 and cfg.lr == 2e-4
    assert cfg.adapter == GaraConfig(variant="lora", ranks=(256,))
    assert cfg.data.corruptions == ["fog", "rain"]


@pytest.mark.parametrize("overrides, message", [
    (["optim.learning_rate=1"], r"unknown config keys \['optim.learning_rate'\]"),
    (["steps=0"], "steps must be positive"),
    (["adapter.variant=dora"], "variant must be one of"),
    (["data.corruptions=[smog]"], r"data.corruptions: unknown corruptions"),
    (["steps"], "must look like key.sub=value"),
])
def test_bad_configs_name_the_key(overrides, message):
    with pytest.raises(ValueError, match=message):
        load_train_config(overrides=overrides)


def test_numbers_in_yaml_exponent_notation_are_numbers():
    cfg = load_train_config(overrides=["optim.lr=2e-4", "steps=1e3"])
    assert cfg.optim.lr == 2e-4 and cfg.steps == 1000 and isinstance(cfg.steps, int)
    with pytest.raises(ValueError, match="optim.lr must be a number"):
        load_train_config(overrides=["optim.lr=fast"])


def test_unknown_corruptions_fail_before_training():
    with pytest.raises(ValueError, match=r"data.eval_corruptions: unknown corruptions \['gaussian_noise'\]"):
        load_train_config(overrides=["data.eval_corruptions=[gaussian_noise]"])
    from gara_model.data.corruptions import CORRUPTIONS, EVAL_CORRUPTIONS

    assert load_train_config().data.eval_corruptions == list(EVAL_CORRUPTIONS)
    assert set(EVAL_CORRUPTIONS) <= set(CORRUPTIONS)
