"""Reference architectures of the ``builtin:`` encoder source.

Each builtin model exposes ``forward_features(x)`` (the final embedding, before
the classifier) and ``feature_layers()``: the ordered module names whose
outputs are scored, from the input side to the output side. Parameter names
of the CIFAR ResNets match the widely used pretrained files (see
``../shared/weights/README.md``) so those load without renaming.
"""

from __future__ import annotations

import inspect
import itertools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, cast

import torch
import torch.nn.functional as F
from torch import nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class ArchInfo:
    """A builtin architecture: its constructor and the preprocessing it expects."""

    name: str
    build: Callable[..., nn.Module]
    input_size: tuple[int, int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    description: str


ARCHITECTURES: dict[str, ArchInfo] = {}


def register(
    name: str, input_size: tuple[int, int, int], mean: tuple[float, ...], std: tuple[float, ...], description: str
) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    def wrap(build: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        ARCHITECTURES[name] = ArchInfo(name, build, input_size, mean, std, description)
        return build

    return wrap


class FeatureModel(nn.Module):
    """Base class: a classifier whose embedding and layers subclassbench can read."""

    head: nn.Module  # the classifier after the embedding: a submodule, or a property naming one

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def feature_layers(self) -> list[str]:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits: torch.Tensor = self.head(self.forward_features(x))
        return logits


# --------------------------------------------------------------------------- digits


class DigitsMLP(FeatureModel):
    def __init__(self, num_classes: int = 5, in_features: int = 64, width: int = 128) -> None:
        super().__init__()
        self.flatten = nn.Flatten()
        self.fc1 = nn.Sequential(nn.Linear(in_features, width), nn.ReLU())
        self.fc2 = nn.Sequential(nn.Linear(width, width), nn.ReLU())
        self.fc3 = nn.Sequential(nn.Linear(width, width // 2), nn.ReLU())
        self.head = nn.Linear(width // 2, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        embedding: torch.Tensor = self.fc3(self.fc2(self.fc1(self.flatten(x))))
        return embedding

    def feature_layers(self) -> list[str]:
        return ["fc1", "fc2"]  # fc3 is the embedding


class DigitsCNN(FeatureModel):
    """A small CNN for 1×8×8 digits: stem, two conv blocks, a dense embedding."""

    def __init__(self, num_classes: int = 5, in_chans: int = 1, width: int = 32) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(in_chans, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU()
        )
        self.block1 = nn.Sequential(
            nn.Conv2d(width, 2 * width, 3, padding=1, bias=False), nn.BatchNorm2d(2 * width), nn.ReLU(), nn.MaxPool2d(2)
        )
        self.block2 = nn.Sequential(
            nn.Conv2d(2 * width, 2 * width, 3, padding=1, bias=False), nn.BatchNorm2d(2 * width), nn.ReLU()
        )
        self.embedding = nn.Sequential(nn.Flatten(), nn.Linear(2 * width * 16, 64), nn.ReLU())
        self.head = nn.Linear(64, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        embedding: torch.Tensor = self.embedding(self.block2(self.block1(self.stem(x))))
        return embedding

    def feature_layers(self) -> list[str]:
        return ["stem", "block1", "block2"]


register("digits_mlp", (1, 8, 8), (0.0,), (1.0,), "3-layer MLP for 8x8 digits")(DigitsMLP)
register("digits_cnn", (1, 8, 8), (0.0,), (1.0,), "3-conv CNN with a dense embedding for 8x8 digits")(DigitsCNN)


class VectorMLP(FeatureModel):
    """A randomly initialised MLP over flat vectors (synthetic tasks)."""

    def __init__(self, num_classes: int = 5, in_features: int = 32, width: int = 64, depth: int = 3) -> None:
        super().__init__()
        self.flatten = nn.Flatten()
        dims = [in_features] + [width] * depth
        self.layers = nn.ModuleList(nn.Sequential(nn.Linear(a, b), nn.ReLU()) for a, b in itertools.pairwise(dims))
        self.head = nn.Linear(width, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.flatten(x)
        for layer in self.layers:
            x = layer(x)
        return x

    def feature_layers(self) -> list[str]:
        return [f"layers.{i}" for i in range(len(self.layers) - 1)]


class Identity(FeatureModel):
    """The input itself as the only layer: a pixel/feature-space baseline."""

    def __init__(self, num_classes: int = 5, **_: Any) -> None:
        super().__init__()
        self.flatten = nn.Flatten()
        self.head = nn.Identity()

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        flat: torch.Tensor = self.flatten(x)
        return flat

    def feature_layers(self) -> list[str]:
        return []


# Vector models take the task's flattened input size; preprocessing leaves it as is.
register("mlp", (0, 0, 0), (0.0,), (1.0,), "random MLP over flat inputs (synthetic tasks)")(VectorMLP)
register("identity", (0, 0, 0), (0.0,), (1.0,), "no network: scores the input itself")(Identity)


# --------------------------------------------------------------------------- CIFAR ResNets


NORMS = ("bn", "ln", "none")


def make_norm(kind: str, channels: int) -> nn.Module:
    """BatchNorm, LayerNorm over (C, H, W) (GroupNorm with one group), or nothing."""
    if kind == "bn":
        return nn.BatchNorm2d(channels)
    if kind == "ln":
        return nn.GroupNorm(1, channels)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"unknown norm '{kind}'; choose from {', '.join(NORMS)}")


class BasicBlock(nn.Module):
    """He et al. (2016) CIFAR basic block with the parameter-free option-A shortcut."""

    def __init__(self, in_planes: int, planes: int, stride: int = 1, norm: str = "bn") -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = make_norm(norm, planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = make_norm(norm, planes)
        self.pad = planes // 4 if (stride != 1 or in_planes != planes) else 0
        # Without normalisation, He-initialised residual branches double the activations' variance at
        # every block and a ResNet-20 diverges at any usable learning rate. SkipInit (De & Smith 2020)
        # scales each branch by a learnable gain that starts at 0, so every block starts as the identity.
        self.skip_gain = nn.Parameter(torch.zeros(())) if norm == "none" else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.skip_gain is not None:
            out = out * self.skip_gain
        shortcut = x
        if self.pad:
            shortcut = F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, self.pad, self.pad))
        return F.relu(out + shortcut)


class CifarResNet(FeatureModel):
    """``norm`` switches BatchNorm for LayerNorm or none (parameter names stay ``bn*``; none adds each
    block's SkipInit gain, ``skip_gain``)."""

    def __init__(self, depth: int = 20, num_classes: int = 10, in_chans: int = 3, norm: str = "bn") -> None:
        super().__init__()
        if (depth - 2) % 6:
            raise ValueError("CIFAR ResNet depth must be 6n + 2")
        n = (depth - 2) // 6
        self.conv1 = nn.Conv2d(in_chans, 16, 3, stride=1, padding=1, bias=False)
        self.bn1 = make_norm(norm, 16)
        self.stem = nn.ReLU()  # named so the stem output has a hookable module
        planes = 16
        stages = []
        for width, stride in ((16, 1), (32, 2), (64, 2)):
            blocks = []
            for i in range(n):
                blocks.append(BasicBlock(planes, width, stride if i == 0 else 1, norm))
                planes = width
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3 = stages
        self.linear = nn.Linear(64, num_classes)
        for module in self.modules():
            if isinstance(module, nn.Conv2d | nn.Linear):
                nn.init.kaiming_normal_(module.weight)

    @property
    def head(self) -> nn.Module:  # type: ignore[override]  # read-only: the classifier is registered as `linear`
        return self.linear

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return x.mean(dim=(2, 3))

    def feature_layers(self) -> list[str]:
        names = ["stem"]
        for s, stage in enumerate((self.layer1, self.layer2, self.layer3), start=1):
            names.extend(f"layer{s}.{i}" for i in range(len(stage)))
        return names


def _cifar_resnet(depth: int) -> Callable[..., nn.Module]:
    def build(num_classes: int = 10, in_chans: int = 3, norm: str = "bn", **_: Any) -> nn.Module:
        return CifarResNet(depth, num_classes, in_chans, norm)

    return build


for _depth in (20, 32, 44, 56):
    register(
        f"cifar_resnet{_depth}",
        (3, 32, 32),
        IMAGENET_MEAN,
        IMAGENET_STD,
        f"CIFAR ResNet-{_depth} (He et al. 2016, option-A shortcuts)",
    )(_cifar_resnet(_depth))


# --------------------------------------------------------------------------- timm nets for small inputs


class _TimmNet(Protocol):
    """The methods of a timm classifier that :class:`TimmSmall` calls."""

    def get_classifier(self) -> nn.Module: ...

    def forward_features(self, x: torch.Tensor) -> torch.Tensor: ...

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor: ...


class TimmSmall(FeatureModel):
    """A timm network wrapped so that subclassbench can read its layers.

    ``resnet18_small``: timm's ResNet-18 with a 3×3 stride-1 stem and no max
    pool, the usual adaptation to 32 px (and 8 px) inputs. ``vit_tiny_p4``:
    timm's ViT-Tiny with 4×4 patches at 32 px (2×2 at 8 px, 8×8 from 64 px up: an 8×8 grid of 64 tokens at
    32 and 64 px alike), class token, mean-free pre-logits from the class token as in timm.
    """

    def __init__(self, net: nn.Module, layers: list[str]) -> None:
        super().__init__()
        self.net = net
        self._layers = layers
        self.num_prefix_tokens = int(getattr(net, "num_prefix_tokens", 0))

    @property
    def head(self) -> nn.Module:  # type: ignore[override]  # read-only: the classifier is timm's, inside `net`
        return self._timm.get_classifier()

    @property
    def _timm(self) -> _TimmNet:
        return cast("_TimmNet", self.net)  # timm.create_model is typed as returning a plain nn.Module

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self._timm.forward_head(self._timm.forward_features(x), pre_logits=True)

    def feature_layers(self) -> list[str]:
        return self._layers


def build_resnet18_small(num_classes: int = 10, in_chans: int = 3, **_: Any) -> nn.Module:
    import timm

    net = timm.create_model("resnet18", pretrained=False, num_classes=num_classes, in_chans=in_chans)
    net.conv1 = nn.Conv2d(in_chans, 64, 3, stride=1, padding=1, bias=False)
    net.maxpool = nn.Identity()
    layers = ["net.act1"] + [f"net.layer{s}.{b}" for s in range(1, 5) for b in range(2)]
    return TimmSmall(net, layers)


def build_vit_tiny_p4(num_classes: int = 10, in_chans: int = 3, img_size: int = 32, **_: Any) -> nn.Module:
    import timm

    # A patch grid of about 8×8 at every size (Tiny ImageNet's 64 px keeps CIFAR's 64 tokens).
    patch = 2 if img_size < 16 else 4 if img_size < 64 else 8
    net = timm.create_model(
        "vit_tiny_patch16_224",
        pretrained=False,
        num_classes=num_classes,
        in_chans=in_chans,
        img_size=img_size,
        patch_size=patch,
    )
    blocks = cast(nn.Sequential, net.blocks)  # timm's ViT holds its transformer blocks in an nn.Sequential
    layers = ["net.patch_embed"] + [f"net.blocks.{i}" for i in range(len(blocks))]
    return TimmSmall(net, layers)


register(
    "resnet18_small",
    (3, 0, 0),
    IMAGENET_MEAN,
    IMAGENET_STD,
    "timm ResNet-18 with a 3x3 stride-1 stem, no max pool (32 px / 8 px inputs)",
)(build_resnet18_small)
register(
    "vit_tiny_p4",
    (3, 0, 0),
    (0.5, 0.5, 0.5),
    (0.5, 0.5, 0.5),
    "timm ViT-Tiny, 4x4 patches at 32 px (2x2 at 8 px, 8x8 at 64 px)",
)(build_vit_tiny_p4)


# The architecture switches a user (--norm) or a model card may set; everything else is fixed by the task.
SWITCHES = ("norm",)


def check_switches(arch: str, switches: object) -> dict[str, Any]:
    """Validate builtin architecture switches (from the command line or a model card)."""
    from subclassbench.errors import SubclassbenchError

    info = ARCHITECTURES.get(arch)
    if info is None:
        raise SubclassbenchError(f"unknown builtin architecture '{arch}'; see `subclassbench encoders`")
    if not isinstance(switches, dict):
        raise SubclassbenchError(f"architecture switches must be a mapping such as {{'norm': 'bn'}}, got {switches!r}")
    accepted = inspect.signature(info.build).parameters
    for key in switches:
        if key not in SWITCHES or key not in accepted:
            raise SubclassbenchError(f"--{key} does not apply to {arch}; it applies to the cifar_resnet* family")
    if "norm" in switches and switches["norm"] not in NORMS:
        raise SubclassbenchError(f"unknown norm '{switches['norm']}'; choose from {', '.join(NORMS)}")
    return dict(switches)
