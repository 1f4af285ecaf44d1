"""Layer discovery on real timm architectures (random weights): whole blocks or the model's own feature stages,
never single operations and never a silent two-point curve."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from subclassbench.encoders.base import EMBEDDING, load_encoder
from subclassbench.encoders.layers import MIN_LAYERS, discover_layers
from subclassbench.errors import SubclassbenchError

timm = pytest.importorskip("timm")

# family → (timm model, expected number of discovered layers without the embedding, first layer)
FAMILIES = {
    "resnet": ("resnet18", 9, "stem"),
    "resnetv2": ("resnetv2_50", 17, "stem"),
    "regnet": ("regnetx_002", 14, "stem"),
    "densenet": ("densenet121", 5, "features.norm0"),
    "inception": ("inception_v3", 5, "Conv2d_2b_3x3"),
    "vgg": ("vgg11", 6, "features.1"),
    "efficientnet": ("efficientnet_b0", 17, "stem"),
    "mobilenetv3": ("mobilenetv3_small_100", 13, "stem"),
    "convnext": ("convnext_atto", 13, "stem"),
    "vit": ("vit_tiny_patch16_224", 13, "stem"),
    "deit": ("deit_tiny_patch16_224", 13, "stem"),
    "swin": ("swin_tiny_patch4_window7_224", 13, "stem"),
    "eva": ("eva02_tiny_patch14_224", 13, "stem"),
    "mixer": ("mixer_s16_224", 9, "stem"),
    "levit": ("levit_128s", 10, "stem"),
}


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_discovered_layers_are_whole_blocks_or_feature_stages(family):
    name, count, first = FAMILIES[family]
    model = timm.create_model(name, pretrained=False)
    layers = discover_layers(model)
    assert len(layers) == count, list(layers)
    assert next(iter(layers)) == first
    order = [n for n, _ in model.named_modules()]
    names = [n for n in layers if n != "stem"]
    assert names == sorted(names, key=order.index)  # forward (registration) order
    for layer_name in names:  # whole blocks or stages: containers, except a model's own feature_info entries
        module = dict(model.named_modules())[layer_name]
        feature_info = [d["module"] for d in getattr(model, "feature_info", [])]
        assert any(True for _ in module.children()) or layer_name in feature_info


@pytest.mark.parametrize("family", ["regnet", "densenet", "vgg"])
def test_every_discovered_layer_fires_in_one_forward(family):
    model = timm.create_model(FAMILIES[family][0], pretrained=False).eval()
    layers = discover_layers(model)
    seen: list[str] = []
    handles = [m.register_forward_hook(lambda *_, n=n: seen.append(n)) for n, m in layers.items()]
    with torch.inference_mode():
        model(torch.zeros(1, 3, 64, 64))
    for handle in handles:
        handle.remove()
    assert set(layers) <= set(seen)


class Flat(nn.Module):
    """No name any pattern knows, no feature_info: nothing but the embedding can be found."""

    def __init__(self) -> None:
        super().__init__()
        self.first = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())
        self.second = nn.Sequential(nn.Conv2d(4, 4, 3), nn.ReLU())
        self.pool = nn.AdaptiveAvgPool2d(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.second(self.first(x))).flatten(1)


def test_too_few_layers_is_an_error_naming_layers_and_any_module_can_be_named():
    encoder = load_encoder("builtin:digits_cnn", pretrained=False)
    encoder.model, encoder.layer_modules, encoder.discovered = Flat(), discover_layers(Flat()), True
    assert len(encoder.layer_names) < MIN_LAYERS
    with pytest.raises(SubclassbenchError, match="--layers"):
        encoder.select_layers(None)
    chosen = encoder.select_layers(["second", "first", EMBEDDING])
    assert chosen == ["first", "second", EMBEDDING]  # forward order, whatever order they were named in
    with pytest.raises(SubclassbenchError, match="unknown layer 'third'"):
        encoder.select_layers(["third"])
