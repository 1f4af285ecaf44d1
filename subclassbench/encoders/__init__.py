"""Encoders: ``source:name`` specs → a model, its preprocessing and its named layers.

- :mod:`~subclassbench.encoders.sources`: the spec, the encoder interface, the source registry and its sources.
- :mod:`~subclassbench.encoders.architectures`: the ``builtin:`` reference networks.
- :mod:`~subclassbench.encoders.preprocessing`: preprocessing that travels with an encoder.
- :mod:`~subclassbench.encoders.hub`: Hugging Face Hub weights resolved to a commit and hashed.
- :mod:`~subclassbench.encoders.module`: a researcher's own ``nn.Module`` as an encoder.

The plug-in interface (docs/adding-an-encoder.md) is importable from here.
"""

from subclassbench.encoders.preprocessing import Preprocessing
from subclassbench.encoders.sources import (
    ENCODER_SOURCES,
    Encoder,
    EncoderSource,
    EncoderSpec,
    LoadRequest,
    load_encoder,
    read_state_dict,
)

__all__ = [
    "ENCODER_SOURCES",
    "Encoder",
    "EncoderSource",
    "EncoderSpec",
    "LoadRequest",
    "Preprocessing",
    "load_encoder",
    "read_state_dict",
]
