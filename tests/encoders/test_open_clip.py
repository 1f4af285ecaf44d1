"""encoders/open_clip.py: an OpenCLIP image tower's layers."""

from __future__ import annotations

import pytest

from subclassbench.encoders.base import load_encoder


def test_open_clip_layers():
    encoder = load_encoder("open_clip:ViT-B-32", pretrained=False)
    assert encoder.layer_names[0] == "stem" and encoder.layer_names[-1] == "embedding"
    assert encoder.layer_names[1:-1] == [f"transformer.resblocks.{i}" for i in range(12)]
    assert encoder.prefix_tokens == 1
    assert encoder.preprocessing.mean == pytest.approx((0.48145466, 0.4578275, 0.40821073))
