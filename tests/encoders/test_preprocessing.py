"""Preprocessing that travels with an encoder (subclassbench.encoders.preprocessing): digits adapted to CIFAR
models."""

from __future__ import annotations

import torch

from subclassbench.encoders.base import load_encoder


def test_preprocessing_adapts_digits_to_cifar_models():
    encoder = load_encoder("builtin:cifar_resnet20")
    x = torch.rand(2, 1, 8, 8)
    y = encoder.preprocessing(x)
    assert y.shape == (2, 3, 32, 32)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    assert torch.allclose(encoder.preprocessing(torch.full((1, 3, 32, 32), 0.5)), (0.5 - mean) / std)
