"""Preprocessing that travels with an encoder (subclassbench.encoders.preprocessing): digits adapted to CIFAR
models."""

from __future__ import annotations

import pytest
import torch

from subclassbench.encoders.base import load_encoder
from subclassbench.errors import SubclassbenchError


def test_preprocessing_adapts_digits_to_cifar_models():
    encoder = load_encoder("builtin:cifar_resnet20")
    x = torch.rand(2, 1, 8, 8)
    y = encoder.preprocessing(x)
    assert y.shape == (2, 3, 32, 32)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    assert torch.allclose(encoder.preprocessing(torch.full((1, 3, 32, 32), 0.5)), (0.5 - mean) / std)


def test_overrides_replace_fields_and_are_recorded():
    encoder = load_encoder(
        "timm:mobilenetv2_050",
        pretrained=False,
        preprocess={"mean": 0.5, "std": "0.5,0.25,0.5", "input_size": 96, "interpolation": "bilinear"},
    )
    p = encoder.preprocessing
    assert p.mean == (0.5, 0.5, 0.5) and p.std == (0.5, 0.25, 0.5) and p.input_size == (3, 96, 96)
    assert p.interpolation == "bilinear" and p.crop_pct == 0.875  # untouched fields stay the encoder's own
    assert encoder.info()["preprocessing_overrides"] == {
        "input_size": [3, 96, 96], "interpolation": "bilinear", "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.25, 0.5]
    }  # fmt: skip
    y = p(torch.full((1, 3, 64, 64), 0.5))
    assert y.shape == (1, 3, 96, 96) and torch.allclose(y, torch.zeros_like(y), atol=1e-5)  # resampled in float32
    assert "preprocessing_overrides" not in load_encoder("timm:mobilenetv2_050", pretrained=False).info()


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"std": -0.5}, "std needs one positive value or 3 positive values"),
        ({"std": 0}, "std needs one positive"),
        ({"input_size": 0}, "input_size must be 1 to 3 sizes between 1 and"),
        ({"input_size": "224,224,224,3"}, "input_size must be"),
        ({"input_size": 10**6}, "input_size must be"),
        ({"input_size": 22.5}, "takes whole numbers"),
        ({"input_size": "5,224,224"}, "5 channels"),
        ({"mean": "nan"}, "takes finite numbers"),
        ({"mean": "0.5,0.5"}, "mean needs one value or 3 values"),
        ({"mean": "red"}, "takes numbers"),
        ({"mean": True}, "takes finite numbers"),
        ({"interpolation": "lanczos"}, "interpolation must be bilinear or bicubic"),
        ({"crop_pct": 0}, "crop_pct must be one number in"),
        ({"size": 224}, "unknown preprocessing field 'size'"),
    ],
)
def test_bad_overrides_are_one_line(overrides, message):
    with pytest.raises(SubclassbenchError, match=message) as caught:
        load_encoder("timm:mobilenetv2_050", pretrained=False, preprocess=overrides)
    assert "\n" not in str(caught.value)


def test_overrides_of_a_vector_encoder_are_refused():
    with pytest.raises(SubclassbenchError, match="takes vectors"):
        load_encoder("builtin:mlp", sample_shape=(32,), preprocess={"mean": 0.5})
