"""encoders/timm.py: timm models' layers, preprocessing and weights files."""

from __future__ import annotations

import pytest
import torch

from subclassbench.core.hashing import sha256_file
from subclassbench.encoders.base import load_encoder
from subclassbench.errors import SubclassbenchError


def test_timm_cnn_layers_and_preprocessing():
    encoder = load_encoder("timm:resnet18", pretrained=False)
    assert encoder.layer_names == ["stem"] + [f"layer{s}.{b}" for s in range(1, 5) for b in range(2)] + ["embedding"]
    assert encoder.preprocessing.input_size == (3, 224, 224)
    assert encoder.preprocessing.crop_pct == pytest.approx(0.95)


def test_timm_vit_layers_exclude_class_token():
    encoder = load_encoder("timm:vit_tiny_patch16_224", pretrained=False)
    assert encoder.layer_names == ["stem"] + [f"blocks.{i}" for i in range(12)] + ["embedding"]
    assert encoder.prefix_tokens == 1


def test_timm_pretrained_offline_is_a_clear_error():
    with pytest.raises(SubclassbenchError, match="pass --weights FILE, or --random-init"):
        load_encoder("timm:resnet18", pretrained=True)


def test_timm_local_weights_file(tmp_path):
    import timm
    from safetensors.torch import save_file

    torch.manual_seed(3)
    model = timm.create_model("resnet18", pretrained=False)
    path = tmp_path / "resnet18.safetensors"
    save_file(model.state_dict(), str(path))
    encoder = load_encoder("timm:resnet18", weights=path)
    assert torch.equal(encoder.model.fc.weight, model.fc.weight)
    assert encoder.weights["sha256"] == sha256_file(path)
