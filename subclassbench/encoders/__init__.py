"""Encoders: ``source:name`` specs → a model, its preprocessing and its named layers.

- :mod:`~subclassbench.encoders.base`: the spec, the encoder interface, the source registry and `load_encoder`.
- :mod:`~subclassbench.encoders.builtin`, :mod:`~subclassbench.encoders.timm`, :mod:`~subclassbench.encoders.open_clip`,
  :mod:`~subclassbench.encoders.hf`, :mod:`~subclassbench.encoders.module`: one module per source; each registers
  itself.
- :mod:`~subclassbench.encoders.weights`: weights files (safetensors, torch with weights_only) and their records.
- :mod:`~subclassbench.encoders.layers`: which modules are layers (block patterns, timm's feature_info).
- :mod:`~subclassbench.encoders.architectures`: the ``builtin:`` reference networks.
- :mod:`~subclassbench.encoders.preprocessing`: preprocessing that travels with an encoder.
- :mod:`~subclassbench.encoders.hub`: Hugging Face Hub weights resolved to a commit and hashed.
- :mod:`~subclassbench.encoders.module`: a researcher's own ``nn.Module`` as an encoder.

The plug-in interface (docs/adding-an-encoder.md) is importable from here.
"""

# Each source module registers itself when imported; this order is the registry's (and `subclassbench encoders`').
# isort: off
from subclassbench.encoders import builtin, timm, open_clip, hf, module  # noqa: F401  (registration)

# isort: on
from subclassbench.encoders.base import (
    EMBEDDING,
    ENCODER_SOURCES,
    Encoder,
    EncoderSource,
    EncoderSpec,
    LoadRequest,
    load_encoder,
)
from subclassbench.encoders.builtin import list_builtin, packaged_tags, packaged_weights_dir, resolve_trained_weights
from subclassbench.encoders.layers import MIN_LAYERS, discover_layers
from subclassbench.encoders.preprocessing import Preprocessing
from subclassbench.encoders.weights import read_state_dict

__all__ = [
    "EMBEDDING",
    "ENCODER_SOURCES",
    "MIN_LAYERS",
    "Encoder",
    "EncoderSource",
    "EncoderSpec",
    "LoadRequest",
    "Preprocessing",
    "discover_layers",
    "list_builtin",
    "load_encoder",
    "packaged_tags",
    "packaged_weights_dir",
    "read_state_dict",
    "resolve_trained_weights",
]
