"""Feature extraction: one forward pass per batch, pooling, batch-size invariance."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from subclassbench.encoders.sources import load_encoder
from subclassbench.features.extraction import extract_features, pool
from subclassbench.tasks.task import load_task


@pytest.fixture(scope="module")
def digits():
    return load_task("digits-5").load_split("test").images


def test_one_forward_pass_per_batch(digits):
    encoder = load_encoder("builtin:cifar_resnet20")
    calls = []
    handle = encoder.model.conv1.register_forward_hook(lambda *a: calls.append(1))
    try:
        features = extract_features(encoder, digits, batch_size=100, progress=False)
    finally:
        handle.remove()
    assert len(calls) == int(np.ceil(len(digits) / 100))  # all 11 layers from 6 passes, not 66
    assert [f.name for f in features] == encoder.layer_names
    assert all(f.features.shape == (len(digits), f.features.shape[1]) for f in features)


def test_batch_size_does_not_change_features(digits):
    encoder = load_encoder("builtin:digits_cnn.digits5_coarse", sample_shape=(1, 8, 8))
    a = extract_features(encoder, digits, batch_size=7, progress=False)
    b = extract_features(encoder, digits, batch_size=540, progress=False)
    for fa, fb in zip(a, b, strict=False):
        np.testing.assert_allclose(fa.features, fb.features, rtol=1e-5, atol=1e-6)


def test_pooled_features_equal_manual_computation(digits):
    encoder = load_encoder("builtin:cifar_resnet20")
    features = {f.name: f for f in extract_features(encoder, digits, ["layer2.1", "embedding"], progress=False)}
    x = encoder.preprocessing(digits.load(np.arange(len(digits))))
    captured = {}
    handle = encoder.model.layer2[1].register_forward_hook(lambda m, i, o: captured.update(out=o))
    with torch.inference_mode():
        embedding = encoder.model.forward_features(x)
    handle.remove()
    np.testing.assert_allclose(features["layer2.1"].features, captured["out"].mean(dim=(2, 3)).numpy(), atol=1e-5)
    np.testing.assert_allclose(features["embedding"].features, embedding.numpy(), atol=1e-5)
    assert features["layer2.1"].pooling == "global_avg_pool"
    assert features["layer2.1"].depth == pytest.approx(5 / 10)


def test_token_pooling_excludes_prefix_tokens():
    tokens = torch.zeros(2, 5, 3)
    tokens[:, 0] = 100.0  # the class token must not leak into the mean
    tokens[:, 1:] = torch.arange(4, dtype=torch.float32).view(1, 4, 1)
    pooled, how = pool(tokens, prefix_tokens=1)
    assert torch.allclose(pooled, torch.full((2, 3), 1.5))
    assert how == "mean_tokens_excl_1_prefix"


def test_pool_shapes():
    assert pool(torch.ones(2, 4, 3, 3), 0)[0].shape == (2, 4)
    assert pool((torch.ones(2, 6), None), 0)[0].shape == (2, 6)
    assert pool(torch.ones(2, 6), 0)[1] == "none"


def test_vit_features_are_pooled_tokens(digits):
    encoder = load_encoder("timm:vit_tiny_patch16_224", pretrained=False)
    subset = digits.subset(np.arange(4))
    features = extract_features(encoder, subset, ["blocks.3", "embedding"], batch_size=2, progress=False)
    assert features[0].features.shape == (4, 192)
    assert features[0].pooling == "mean_tokens_excl_1_prefix"


def test_swin_channels_last_maps_are_pooled_over_space(digits):
    encoder = load_encoder("timm:swin_tiny_patch4_window7_224", pretrained=False)
    assert encoder.channels_last_maps
    assert [n for n in encoder.layer_names if n.startswith("layers.3")] == ["layers.3.blocks.0", "layers.3.blocks.1"]
    features = extract_features(encoder, digits.subset(np.arange(2)), ["stem", "layers.3.blocks.1"], progress=False)
    assert [f.features.shape[1] for f in features] == [96, 768]  # channel widths, not spatial sizes
