"""The builtin reference networks (subclassbench.encoders.architectures): the CIFAR ResNets' layers and
parameter counts."""

from __future__ import annotations

import pytest

from subclassbench.encoders.base import load_encoder


@pytest.mark.parametrize(("depth", "blocks"), [(20, 3), (56, 9)])
def test_cifar_resnet_layers(depth, blocks):
    encoder = load_encoder(f"builtin:cifar_resnet{depth}")
    assert encoder.layer_names[0] == "stem" and encoder.layer_names[-1] == "embedding"
    assert len(encoder.layer_names) == 3 * blocks + 2


@pytest.mark.parametrize(("depth", "params"), [(20, 269_722), (32, 464_154), (44, 658_586), (56, 853_018)])
def test_cifar_resnet_parameter_count_matches_reference(depth, params):
    # The published counts of He et al.'s CIFAR ResNets with a 10-way head (option-A shortcuts).
    encoder = load_encoder(f"builtin:cifar_resnet{depth}", num_classes=10)
    assert sum(p.numel() for p in encoder.model.parameters()) == params
