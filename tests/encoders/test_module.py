"""A researcher's own nn.Module as an encoder (subclassbench.encoders.module): stage layers traced, timm-style
models read (the Python API around it: evaluation/test_api.py)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from subclassbench.encoders.module import stage_layers, wrap_module


def test_stage_layers_of_a_network_of_linear_layers_are_its_activations():
    mlp = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 32), nn.GELU(), nn.Linear(32, 5))
    assert stage_layers(mlp, torch.rand(1, 1, 8, 8)) == ["2", "4"]


def test_wrap_module_reads_timm_style_models():
    timm = pytest.importorskip("timm")
    model = timm.create_model("resnet10t", pretrained=False, num_classes=5)
    encoder = wrap_module(model, sample_shape=(3, 32, 32))
    assert encoder.weights["embedding"] == "forward_head(pre_logits=True)"
    assert [n for n in encoder.layer_names if n.startswith("layer")] == [
        "layer1.0", "layer2.0", "layer3.0", "layer4.0",
    ]  # fmt: skip
