import pytest

from gara_model.config import GaraConfig


def test_json_round_trip():
    config = GaraConfig(variant="gara_unified", ranks=(32,), tau=0.7, projections=("q", "v"), blocks=(0, 3))
    assert GaraConfig.from_json(config.to_json()) == config


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"variant": "dora"}, "variant"),
        ({"variant": "gara", "ranks": (16,)}, "ranks"),
        ({"variant": "lora", "ranks": (16, 256)}, "ranks"),
        ({"ranks": (0, 4)}, "ranks"),
        ({"tau": 0.0}, "tau"),
        ({"gate_hidden_dim": 0}, "gate_hidden_dim"),
        ({"projections": ("q", "o")}, "projections"),
    ],
)
def test_invalid_fields_raise_naming_the_field(kwargs, field):
    with pytest.raises(ValueError, match=field):
        GaraConfig(**kwargs)


def test_unknown_json_field_is_rejected():
    with pytest.raises(ValueError, match="unknown GaraConfig fields"):
        GaraConfig.from_json('{"variant": "gara", "alpha": 3}')
