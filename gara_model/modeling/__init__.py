"""SAM's image-encoder block and attention, rebuilt around the gated-rank adapters."""

from gara_model.modeling.attention import ATTENTION_BACKENDS, set_attention_backend
from gara_model.modeling.basam import SCALINGS, model_scaling, set_scaling
from gara_model.modeling.block import GaraBlock
from gara_model.modeling.inject import (
    ParameterCount,
    adapter_state_dict,
    adapter_layers,
    count_parameters,
    gara_config,
    inject_adapters,
    mark_only_adapters_trainable,
    set_adapters_enabled,
    set_merged_inference,
)
from gara_model.modeling.resolution import set_image_size

__all__ = [
    "ATTENTION_BACKENDS",
    "SCALINGS",
    "GaraBlock",
    "ParameterCount",
    "adapter_state_dict",
    "adapter_layers",
    "count_parameters",
    "gara_config",
    "inject_adapters",
    "mark_only_adapters_trainable",
    "model_scaling",
    "set_adapters_enabled",
    "set_attention_backend",
    "set_image_size",
    "set_merged_inference",
    "set_scaling",
]
