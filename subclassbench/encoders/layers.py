"""Which modules of a network are its layers: the stem and every block, in forward order.

Named patterns find whole blocks across timm, OpenCLIP and transformers models; where names find
only single operations or too few modules, timm's ``feature_info`` names the stages instead.
"""

from __future__ import annotations

import re

from torch import nn

# Block-level modules, tried in order; the first pattern that matches any module wins.
BLOCK_PATTERNS = (
    r"layer\d+\.\d+",  # torchvision/timm ResNets, OpenCLIP ModifiedResNet
    r"stages\.\d+\.blocks\.\d+",  # ConvNeXt, many timm hierarchical nets
    r"layers\.\d+\.blocks\.\d+",  # Swin
    r"transformer\.resblocks\.\d+",  # OpenCLIP ViT
    r"blocks\.\d+\.\d+",  # EfficientNet / MobileNet stages of blocks
    r"blocks\.\d+",  # timm ViT, DeiT, MLP-Mixer
    r"s\d+\.b\d+",  # timm RegNet
    r"(encoder\.)?layers?\.\d+",  # transformers ViT, DeiT, BEiT, DINOv2
    r"encoder\.stages\.\d+\.layers\.\d+",  # transformers ResNet, ConvNeXt
    r"stages\.\d+",
    r"features\.\d+",
)
MIN_LAYERS = 3  # with the embedding: fewer cannot show how structure changes with depth
STEM_CANDIDATES = ("stem", "patch_embed", "maxpool", "act1", "conv1", "conv_stem", "embeddings", "embedder")


def discover_layers(root: nn.Module) -> dict[str, nn.Module]:
    """Stem plus every block, in registration (= forward) order.

    Blocks are found by name (:data:`BLOCK_PATTERNS`) when the names match
    containers — whole blocks. When they match single operations (VGG's
    ``features.N``: each conv, ReLU and pool) or too few modules (DenseNet,
    Inception), timm's ``feature_info`` — the model's own list of the
    stage outputs it exposes as features — names the layers instead.
    """
    modules = dict(root.named_modules())
    layers: dict[str, nn.Module] = {}
    for name in STEM_CANDIDATES:
        if name in modules:
            layers["stem"] = modules[name]
            break
    blocks: list[str] = []
    for pattern in BLOCK_PATTERNS:
        regex = re.compile(pattern + "$")
        blocks = [name for name in modules if regex.fullmatch(name)]
        if blocks:
            break
    whole_blocks = len(blocks) >= 2 and all(any(True for _ in modules[name].children()) for name in blocks)
    stages = [name for name in _feature_info_modules(root) if name in modules]
    if not whole_blocks and len(stages) >= 2:
        return {name: modules[name] for name in stages}
    layers.update((name, modules[name]) for name in blocks)
    return layers


def _feature_info_modules(root: nn.Module) -> list[str]:
    """Module names from timm's ``feature_info`` (a list of dicts, or a ``FeatureInfo``), else nothing."""
    info = getattr(root, "feature_info", None)
    try:
        entries = list(info) if info is not None else []
    except TypeError:
        return []
    return [e["module"] for e in entries if isinstance(e, dict) and isinstance(e.get("module"), str)]
