"""Feature extraction (subclassbench.features.extraction): one forward pass per batch, pooling, batch-size
invariance, streaming into the cache, shards, loader processes, bf16 and channels-last."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from subclassbench.encoders.base import load_encoder
from subclassbench.errors import SubclassbenchError
from subclassbench.features import extraction as features
from subclassbench.features import extraction as features_module
from subclassbench.features.cache import FeatureCache
from subclassbench.features.extraction import (
    ExtractionContext,
    extract_cached,
    extract_features,
    extract_shard,
    iterate_batches,
    pool,
)
from subclassbench.features.outputs import output_tensor
from subclassbench.tasks.task import load_task
from tests.memory import N_LAYERS, WIDTH, _peak, wide_encoder


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
    assert pool(output_tensor((torch.ones(2, 6), None), "a block"), 0)[0].shape == (2, 6)  # (tensor, extras)
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


# --------------------------------------------------------------------------- streaming into the cache


def test_extraction_streams_into_the_cache_without_holding_the_split(digits_train, tmp_path):
    """Every layer's features of the split go to disk batch by batch: extraction holds a batch of every
    layer, not the split's matrices (which the in-memory path must hold whole)."""
    context = ExtractionContext.create(wide_encoder(), digits_train, None, batch_size=32)
    total = len(digits_train) * N_LAYERS * WIDTH * 4
    streamed = _peak(lambda: extract_cached(context, FeatureCache(tmp_path / "cache")))
    held = _peak(lambda: extract_cached(context, None))
    assert held >= total  # the in-memory path: every layer of every row
    assert streamed < total / 8, (streamed, total)
    cached = extract_cached(context, FeatureCache(tmp_path / "cache"))
    assert all(isinstance(layer.source, Path) for layer in cached)  # served as files, read when scored
    in_memory = extract_cached(context, None)
    for a, b in zip(cached, in_memory, strict=True):
        assert a.name == b.name and a.pooling == b.pooling and np.array_equal(a.features, b.features)


def test_extraction_failing_midway_leaves_no_entry(digits_train, tmp_path, monkeypatch):
    encoder = wide_encoder()
    calls = {"n": 0}
    forward = encoder.model.forward

    def failing(x: torch.Tensor) -> torch.Tensor:
        calls["n"] += 1
        if calls["n"] == 3:
            raise torch.OutOfMemoryError("CUDA out of memory")
        return forward(x)

    encoder.embed = failing
    cache = FeatureCache(tmp_path / "cache")
    context = ExtractionContext.create(encoder, digits_train, None, batch_size=64)
    with pytest.raises(SubclassbenchError, match=r"ran out of memory on a batch of shape 64x.*lower --batch-size"):
        extract_cached(context, cache)
    assert cache.entries() == [] and not [p for p in (tmp_path / "cache").rglob("*") if p.is_file()]


def test_forward_batches_are_counted_once_per_batch(digits_train, tmp_path):
    before = features_module.FORWARD_BATCHES
    extract_cached(ExtractionContext.create(wide_encoder(), digits_train, None, batch_size=100), None)
    assert features_module.FORWARD_BATCHES - before == -(-len(digits_train) // 100)


# --------------------------------------------------------------------------- shards


def test_shards_merge_to_the_unsharded_features(tmp_path):
    task = load_task("digits-5")
    split = task.load_split()
    encoder = load_encoder("builtin:digits_cnn.digits5_coarse")
    cache = FeatureCache(tmp_path)
    context = ExtractionContext.create(encoder, split, None, batch_size=64)
    for index in range(3):
        extract_shard(context, index, 3, cache)
    before = features.FORWARD_BATCHES
    merged = extract_cached(context, cache, n_shards=3)
    assert features.FORWARD_BATCHES == before
    whole = extract_features(encoder, split.images, None, batch_size=64, progress=False)
    for a, b in zip(merged, whole, strict=True):
        assert a.name == b.name and a.pooling == b.pooling and np.array_equal(a.features, b.features)


# --------------------------------------------------------------------------- loader processes, bf16 and channels-last


def test_loader_processes_give_the_features_of_an_in_process_load(tiny_image_folder, tiny_image_task):
    from subclassbench.tasks.task import load_task as load

    split = load(str(tiny_image_task)).load_split("test", str(tiny_image_folder))
    assert split.images.decodes
    encoder = load_encoder("builtin:cifar_resnet20", sample_shape=(3, 16, 16))
    inline = extract_features(encoder, split.images, batch_size=16, progress=False, workers=0)
    parallel = extract_features(encoder, split.images, batch_size=16, progress=False, workers=2)
    for a, b in zip(inline, parallel, strict=True):
        assert np.array_equal(a.features, b.features)


def test_a_corrupt_image_in_a_loader_process_is_one_line(tiny_image_folder, tiny_image_task):
    from subclassbench.tasks.task import load_task as load

    split = load(str(tiny_image_task)).load_split("test", str(tiny_image_folder))
    split.images.paths[5].write_bytes(b"not an image")
    with pytest.raises(SubclassbenchError, match="cannot decode image") as caught:
        list(iterate_batches(split.images, 8, workers=2))
    assert "\n" not in str(caught.value)


def test_bf16_and_channels_last_key_the_cache_and_stay_close(digits_train):
    encoder = load_encoder("builtin:cifar_resnet20", sample_shape=(1, 8, 8))
    images = digits_train.images.subset(np.arange(64))
    reference = extract_features(encoder, images, progress=False)
    layout = extract_features(encoder, images, progress=False, channels_last=True)
    half = extract_features(encoder, images, progress=False, dtype="bf16")
    for ref, nhwc, bf in zip(reference, layout, half, strict=True):
        np.testing.assert_allclose(nhwc.features, ref.features, rtol=1e-4, atol=1e-5)
        scale = np.abs(ref.features).max() + 1e-6
        assert np.abs(bf.features - ref.features).max() / scale < 0.05  # bf16 keeps ~3 significant digits
    assert not any(np.array_equal(r.features, b.features) for r, b in zip(reference, half, strict=True))
    keys = {
        ExtractionContext.create(encoder, digits_train, None, dtype=d, channels_last=c).key("embedding")
        for d, c in (("fp32", False), ("bf16", False), ("fp32", True))
    }
    assert len(keys) == 3
    # The fp32 reference's key has no compute field, so caches filled before these options stay valid.
    assert "compute" not in ExtractionContext.create(encoder, digits_train, None).fields("embedding")
