"""encoders/base.py: spec parsing, layer selection, seeded initialisation, the image/vector check."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from subclassbench.encoders.base import EncoderSpec, load_encoder
from subclassbench.errors import SubclassbenchError


@pytest.mark.parametrize(
    ("spec", "parsed"),
    [
        ("builtin:cifar_resnet20", ("builtin", "cifar_resnet20", None)),
        ("builtin:digits_cnn.digits5_coarse", ("builtin", "digits_cnn", "digits5_coarse")),
        ("timm:vit_tiny_patch16_224.augreg_in21k", ("timm", "vit_tiny_patch16_224", "augreg_in21k")),
        ("open_clip:ViT-B-32@laion2b_s34b_b79k", ("open_clip", "ViT-B-32", "laion2b_s34b_b79k")),
    ],
)
def test_spec_parsing(spec, parsed):
    p = EncoderSpec.parse(spec)
    assert (p.source, p.name, p.tag) == parsed


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("resnet20", "needs a source prefix"),
        ("keras:resnet", "unknown model source 'keras'"),
        ("builtin:cifar_resnet21", "unknown builtin architecture 'cifar_resnet21'.*cifar_resnet20"),
        ("builtin:digits_cnn.nope", "no packaged weights 'nope'.*digits5_coarse"),
        ("timm:resnet_nonexistent", "unknown timm model"),
        ("open_clip:ViT-Z-99", "unknown open_clip architecture"),
    ],
)
def test_bad_specs(spec, message):
    with pytest.raises(SubclassbenchError, match=message):
        load_encoder(spec, pretrained=False)


def test_unknown_layer_lists_valid_layers():
    encoder = load_encoder("builtin:cifar_resnet20")
    with pytest.raises(SubclassbenchError, match=r"unknown layer 'layer4.0'.*valid layers: stem, layer1.0"):
        encoder.select_layers(["layer4.0"])
    assert encoder.select_layers(["embedding", "stem"]) == ["stem", "embedding"]  # encoder order


def test_random_init_is_reproducible():
    a = load_encoder("builtin:cifar_resnet20").model.state_dict()
    b = load_encoder("builtin:cifar_resnet20").model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert np.isfinite(a["conv1.weight"].numpy()).all()


def test_random_init_of_hub_models_is_seeded():
    a = load_encoder("timm:resnet18", pretrained=False).model.state_dict()
    torch.rand(10)  # moving the global generator must not matter
    b = load_encoder("timm:resnet18", pretrained=False).model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_init_seed_controls_every_parameter_of_a_vit():
    a = load_encoder("builtin:vit_tiny_p4", sample_shape=(3, 32, 32), init_seed=0).model
    b = load_encoder("builtin:vit_tiny_p4", sample_shape=(3, 32, 32), init_seed=1).model
    assert not torch.equal(a.net.cls_token, b.net.cls_token)
    assert not torch.equal(a.net.pos_embed, b.net.pos_embed)


def test_vector_samples_into_an_image_encoder_are_an_error():
    with pytest.raises(SubclassbenchError, match="takes images but the task's samples are vectors"):
        load_encoder("builtin:digits_cnn", sample_shape=(32,))
    with pytest.raises(SubclassbenchError, match="takes images but the task's samples are vectors"):
        load_encoder("timm:resnet18", sample_shape=(32,), pretrained=False)


def test_a_timm_typo_shows_the_five_closest_names():
    from subclassbench.encoders.base import load_encoder

    with pytest.raises(SubclassbenchError, match=r"closest: resnet18, .*\(of [\d,]+\)") as caught:
        load_encoder("timm:resnt18", pretrained=False)
    listed = str(caught.value).split("closest: ")[1].split(" (of")[0].split(", ")
    assert len(listed) == 5 and "resnet18" in listed
